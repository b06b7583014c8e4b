"""HL7 v2 messages to FHIR R4 resources (plain dicts) for one transaction Bundle.

Resource ids are uuid5 values of stable business keys, so that the same message sent again, or a
later message about the same patient, visit, order or appointment, gives the same ids and the
store sees an update (or no change) instead of a new record:

- Patient: the first PID-3 identifier with its assigning authority;
- Encounter: PV1-19 visit number (else the message control id);
- DiagnosticReport: OBR-3 filler (else OBR-2 placer) order number (else control id + OBR position);
- Observation: the report key + OBX-3 code + OBX-4 sub-id + its occurrence (else control id + position),
  so that a corrected result (OBX-11 C) in a new message replaces the preliminary one;
- Appointment: SCH-1 placer (else SCH-2 filler) appointment id;
- Practitioner and Location: their identifier or their coded location parts.

Bundle ``fullUrl`` values are ``urn:uuid:`` of the message control id + segment position + type:
they only tie references together inside one Bundle.

Problems never quote field values: values can be PHI.
"""

from patients.ingest.entries import JSON
from patients.ingest.hl7v2.dates import offset_read
from patients.ingest.hl7v2.mapping.administration import encounter_map, merge_map, patient_map
from patients.ingest.hl7v2.mapping.common import (
    PATIENT_ONLY_EVENTS,
    SUPPORTED_MESSAGE_TYPES,
    MessageMapping,
    stable_id,
)
from patients.ingest.hl7v2.mapping.results import observation_map, report_map
from patients.ingest.hl7v2.mapping.scheduling import appointment_map
from patients.ingest.hl7v2.parse import Message

__all__ = ["SUPPORTED_MESSAGE_TYPES", "message_map", "required_segments"]

# OBX-11 (table 0085) "O": order detail description only, no result.
ORDER_DETAIL_ONLY = "O"


def message_map(message: Message, *, default_timezone: str) -> MessageMapping:
    """Map one supported message; the caller has checked its type, version and required segments."""
    header = message.header
    mapping = MessageMapping(message=message, default_timezone=default_timezone, control_id=header.get(10))
    mapping.default_offset = offset_read(header.get(7))
    mapping.datetime(header, 7)  # reports an invalid message time
    message_type, trigger = header.get(9, 1).upper(), header.get(9, 2).upper()
    patient_url = ""
    encounter_url: str | None = None
    report: JSON | None = None
    report_key = ""
    occurrences: dict[tuple[str, str], int] = {}
    evn = message.one("EVN")
    if evn is not None:
        mapping.datetime(evn, 2)
    for segment in message.segments:
        if segment.name == "PID":
            patient, _ = patient_map(mapping, segment)
            if message_type == "ADT" and trigger == "A40":
                mrg = message.one("MRG")
                # The survivor is added after the prior record: see merge_map.
                survivor_url = (
                    f"urn:uuid:{stable_id('fullUrl', mapping.control_id, str(segment.position), 'survivor')}"
                )
                if mrg is not None:
                    merge_map(mapping, mrg, survivor=patient, survivor_url=survivor_url)
                mapping.entries.append(
                    {
                        "fullUrl": survivor_url,
                        "resource": patient,
                        "request": {"method": "POST", "url": "Patient"},
                    }
                )
                patient_url = survivor_url
            else:
                patient_url = mapping.add(patient, segment=segment)
            encounter_url = None
        elif segment.name == "PV1" and patient_url and message_type in {"ADT", "ORU"}:
            if message_type == "ADT" and trigger in PATIENT_ONLY_EVENTS | {"A40"}:
                continue
            encounter_url = encounter_map(mapping, segment, patient_url=patient_url, trigger=trigger, evn=evn)
        elif segment.name == "OBR" and patient_url:
            report, report_key = report_map(
                mapping, segment, patient_url=patient_url, encounter_url=encounter_url
            )
            mapping.add(report, segment=segment)
        elif segment.name == "OBX" and patient_url and message_type == "ORU":
            if segment.get(11).upper() == ORDER_DETAIL_ONLY:
                continue  # describes the order, holds no result: not an Observation (the message is kept)
            code_key = (segment.get(3), segment.get(4))
            occurrences[code_key] = occurrences.get(code_key, 0) + 1
            url = observation_map(
                mapping,
                segment,
                patient_url=patient_url,
                encounter_url=encounter_url,
                report_key=report_key,
                occurrence=occurrences[code_key],
                effective=report.get("effectiveDateTime") if report is not None else None,
            )
            if report is not None:
                report.setdefault("result", []).append({"reference": url})
        elif segment.name == "SCH" and message_type == "SIU":
            continue  # mapped once the patient is known, below
    if message_type == "SIU":
        sch = message.one("SCH")
        if sch is not None and patient_url:
            appointment_map(mapping, sch, patient_url=patient_url, trigger=trigger)
    return mapping


def required_segments(message_type: str, trigger: str) -> tuple[str, ...]:
    if message_type == "ADT":
        if trigger in PATIENT_ONLY_EVENTS:
            return ("PID",)
        if trigger == "A40":
            return ("PID", "MRG")
        return ("PID", "PV1")
    if message_type == "ORU":
        return ("PID", "OBR")
    if message_type == "SIU":
        return ("SCH", "PID")
    return ()
