"""SIU: Appointment (SCH, AIS, AIP, AIL)."""

from datetime import timedelta

from patients.ingest.entries import JSON
from patients.ingest.hl7v2 import codes
from patients.ingest.hl7v2.dates import datetime_parse
from patients.ingest.hl7v2.mapping.administration import location_add, practitioner_add
from patients.ingest.hl7v2.mapping.common import (
    APPOINTMENT_STATUSES,
    MessageMapping,
    codeable_concept,
    entity_identifier,
    identifier_key,
    number_parse,
    stable_id,
)
from patients.ingest.hl7v2.parse import Segment


def appointment_map(mapping: MessageMapping, sch: Segment, *, patient_url: str, trigger: str) -> None:
    message = mapping.message
    key = entity_identifier(sch.first(1)) or entity_identifier(sch.first(2))
    if key is not None:
        appointment_id = stable_id("Appointment", *identifier_key(key))
    else:
        appointment_id = stable_id("Appointment", mapping.control_id, str(message.number))
    status = APPOINTMENT_STATUSES[trigger]
    filler_status = sch.get(25)
    if trigger == "S14" and filler_status.capitalize() in codes.APPOINTMENT_STATUSES:
        status = codes.APPOINTMENT_STATUSES[filler_status.capitalize()]
    appointment: JSON = {"resourceType": "Appointment", "id": appointment_id, "status": status}
    identifiers = [
        found for found in (entity_identifier(sch.first(1)), entity_identifier(sch.first(2))) if found
    ]
    if identifiers:
        appointment["identifier"] = identifiers
    reason = codeable_concept(sch.first(7))
    if reason:
        appointment["reasonCode"] = [reason]
    appointment_type = codeable_concept(sch.first(8))
    if appointment_type:
        appointment["appointmentType"] = appointment_type
    start, end, minutes = _appointment_times(mapping, sch)
    if start:
        appointment["start"] = start
    if end:
        appointment["end"] = end
    if minutes:
        appointment["minutesDuration"] = minutes
    participants: list[JSON] = [{"actor": {"reference": patient_url}, "status": "accepted"}]
    for aip in message.all("AIP"):
        for position, composite in enumerate(aip.repetitions(3)):
            url = practitioner_add(mapping, composite, segment=aip, role=f"personnel-{position}")
            if url:
                participants.append({"actor": {"reference": url}, "status": "accepted"})
    for ail in message.all("AIL"):
        url = location_add(mapping, ail.first(3), segment=ail, role="location")
        if url:
            participants.append({"actor": {"reference": url}, "status": "accepted"})
    appointment["participant"] = participants
    mapping.add(appointment, segment=sch)


def _appointment_times(mapping: MessageMapping, sch: Segment) -> tuple[str | None, str | None, int | None]:
    """Start and end from SCH-11 (TQ: ^^duration^start^end), else the first AIS (start at 4, duration 7/8)."""
    start = mapping.datetime(sch, 11, component=4)
    end = mapping.datetime(sch, 11, component=5)
    minutes = None
    ais = mapping.message.one("AIS")
    if start is None and ais is not None:
        start = mapping.datetime(ais, 4)
        duration = number_parse(ais.get(7))
        unit = ais.get(8).upper() or "MIN"
        if duration is not None and unit in codes.MINUTES_PER_UNIT:
            minutes = round(duration * codes.MINUTES_PER_UNIT[unit])
    if minutes is None:
        duration = number_parse(sch.get(9))
        unit = sch.get(10).upper() or "MIN"
        if duration is not None and unit in codes.MINUTES_PER_UNIT:
            minutes = round(duration * codes.MINUTES_PER_UNIT[unit])
    moment = datetime_parse(start) if start else None
    if end is None and moment is not None and minutes:
        end = (moment + timedelta(minutes=minutes)).isoformat()
    # Appointment.start/end are instants: a date without a time cannot be one.
    if start is not None and moment is None:
        start = end = None
    if end is not None and datetime_parse(end) is None:
        end = None
    return start, end, minutes if minutes and minutes > 0 else None
