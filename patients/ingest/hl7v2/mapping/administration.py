"""ADT: Patient (PID), Practitioner, Location, Encounter (PV1/PV2) and merges (MRG)."""

from patients.ingest.entries import JSON, Problem
from patients.ingest.hl7v2 import codes
from patients.ingest.hl7v2.mapping.common import (
    ADMISSION_EVENTS,
    BCP47,
    ENCOUNTER_STATUSES,
    MessageMapping,
    address,
    authority_system,
    codeable_concept,
    contact_point,
    human_name,
    identifier,
    identifier_key,
    stable_id,
)
from patients.ingest.hl7v2.parse import Composite, Segment


def patient_map(mapping: MessageMapping, pid: Segment) -> tuple[JSON, str]:
    """PID -> Patient; returns the resource and its id."""
    identifiers: list[JSON] = []
    for number, use in ((3, ""), (2, "old"), (4, "secondary")):
        for composite in pid.repetitions(number):
            found = identifier(composite, use=use)
            if found is not None and identifier_key(found) not in {identifier_key(i) for i in identifiers}:
                identifiers.append(found)
    social_security = pid.get(19)
    if social_security:
        identifiers.append(
            {
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": social_security,
                "type": {"coding": [{"system": codes.IDENTIFIER_TYPE_SYSTEM, "code": "SS"}]},
            }
        )
    if identifiers:
        system, value = identifier_key(identifiers[0])
        patient_id = stable_id("Patient", system, value)
    else:
        patient_id = stable_id("Patient", mapping.control_id, str(mapping.message.number), str(pid.position))
    patient: JSON = {"resourceType": "Patient", "id": patient_id}
    if identifiers:
        patient["identifier"] = identifiers
    names = [name for name in (human_name(c) for c in pid.repetitions(5)) if name]
    if names:
        patient["name"] = names
    telecom = [
        point
        for number, use in ((13, "home"), (14, "work"))
        for point in (contact_point(c, default_use=use) for c in pid.repetitions(number))
        if point
    ]
    if telecom:
        patient["telecom"] = telecom
    gender = codes.GENDERS.get(pid.get(8).upper())
    if gender:
        # A code outside table 0001 is left out rather than guessed: gender is optional in FHIR.
        patient["gender"] = gender
    birth_date = mapping.date(pid, 7)
    if birth_date:
        patient["birthDate"] = birth_date
    deceased_at = mapping.datetime(pid, 29)
    if deceased_at:
        patient["deceasedDateTime"] = deceased_at
    elif pid.get(30).upper() in {"Y", "N"}:
        patient["deceasedBoolean"] = pid.get(30).upper() == "Y"
    addresses = [found for found in (address(c) for c in pid.repetitions(11)) if found]
    if addresses:
        patient["address"] = addresses
    marital = pid.first(16)
    if marital.get(1):
        code = codes.MARITAL_STATUSES.get(marital.get(1).upper())
        concept: JSON = {"coding": [{"system": codes.MARITAL_STATUS_SYSTEM, "code": code}]} if code else {}
        if marital.get(2) or not code:
            concept["text"] = marital.get(2) or marital.get(1)
        patient["maritalStatus"] = concept
    language = pid.first(15)
    if language.get(1):
        code = language.get(1)
        coding: JSON = {"code": code}
        if (BCP47.match(code) and len(code) == 2) or "-" in code:
            coding["system"] = "urn:ietf:bcp:47"
        if language.get(2):
            coding["display"] = language.get(2)
        patient["communication"] = [{"language": {"coding": [coding]}, "preferred": True}]
    return patient, patient_id


def practitioner_add(
    mapping: MessageMapping, composite: Composite, *, segment: Segment, role: str
) -> str | None:
    """XCN -> Practitioner (one per person and message); returns its full URL."""
    name = human_name(composite, family_at=2)
    value = composite.get(1)
    if name is None and not value:
        return None
    system = authority_system(composite.get(9, 1), composite.get(9, 2), composite.get(9, 3))
    if value:
        practitioner_id = stable_id("Practitioner", system, value)
    else:
        practitioner_id = stable_id("Practitioner", mapping.control_id, str(segment.position), role)
    if practitioner_id in mapping.practitioners:
        return mapping.practitioners[practitioner_id]
    practitioner: JSON = {"resourceType": "Practitioner", "id": practitioner_id}
    if value:
        found: JSON = {"value": value}
        if system:
            found["system"] = system
        practitioner["identifier"] = [found]
    if name:
        practitioner["name"] = [name]
    full_url = mapping.add(practitioner, segment=segment, role=role)
    mapping.practitioners[practitioner_id] = full_url
    return full_url


def location_add(mapping: MessageMapping, composite: Composite, *, segment: Segment, role: str) -> str | None:
    """PL: point of care^room^bed^facility^status^type^building^floor -> Location."""
    parts = [composite.get(number) for number in (4, 7, 8, 1, 2, 3)]
    if not any(parts):
        return None
    location_id = stable_id("Location", *parts)
    if location_id in mapping.locations:
        return mapping.locations[location_id]
    facility, building, floor, point_of_care, room, bed = parts
    name = " ".join(part for part in (point_of_care, room, bed) if part) or facility or building
    location: JSON = {"resourceType": "Location", "id": location_id, "name": name, "mode": "instance"}
    description = ", ".join(part for part in (facility, building, floor) if part)
    if description:
        location["description"] = description
    full_url = mapping.add(location, segment=segment, role=role)
    mapping.locations[location_id] = full_url
    return full_url


def encounter_map(
    mapping: MessageMapping, pv1: Segment, *, patient_url: str, trigger: str, evn: Segment | None
) -> str:
    """PV1 -> Encounter (with its Location and Practitioners); returns the Encounter's full URL."""
    visit = identifier(pv1.first(19))
    if visit is not None:
        encounter_id = stable_id("Encounter", *identifier_key(visit))
    else:
        encounter_id = stable_id("Encounter", mapping.control_id, str(mapping.message.number))
    patient_class = pv1.get(2).upper()
    class_code = codes.ENCOUNTER_CLASSES.get(patient_class)
    if class_code is not None:
        encounter_class = {"system": codes.ACT_CODE_SYSTEM, "code": class_code[0], "display": class_code[1]}
    else:
        system, code, display = codes.UNKNOWN_ENCOUNTER_CLASS
        encounter_class = {"system": system, "code": code, "display": display}
    start = mapping.datetime(pv1, 44)
    if start is None and trigger in ADMISSION_EVENTS and evn is not None:
        # The admission is the event: EVN-6 says when it occurred. MSH-7 only says when the message was
        # written (a resend, a batch at night), so it is no admission time.
        start = mapping.datetime(evn, 6)
    end = mapping.datetime(pv1, 45)
    status = ENCOUNTER_STATUSES.get(trigger)
    if status is None:
        # The v2-to-FHIR PV1 map: a discharge time (PV1-45) means finished, else the patient class says.
        status = "finished" if end else codes.ENCOUNTER_STATUSES_BY_CLASS.get(patient_class, "unknown")
    pv2 = mapping.message.one("PV2")
    if status == "planned" and pv2 is not None:
        # A planned visit has no actual times yet: its period is the expected one (PV2-8 admit, PV2-9 discharge).
        start = start or mapping.datetime(pv2, 8)
        end = end or mapping.datetime(pv2, 9)
    if trigger == "A13":
        end = None
    encounter: JSON = {
        "resourceType": "Encounter",
        "id": encounter_id,
        "status": status,
        "class": encounter_class,
        "subject": {"reference": patient_url},
    }
    if visit is not None:
        encounter["identifier"] = [visit]
    period = {key: value for key, value in (("start", start), ("end", end)) if value}
    if period:
        encounter["period"] = period
    participants = []
    for number, code, role in ((7, "ATND", "attending"), (8, "REF", "referring"), (9, "CON", "consulting"),
                               (17, "ADM", "admitting")):  # fmt: skip
        for position, composite in enumerate(pv1.repetitions(number)):
            url = practitioner_add(mapping, composite, segment=pv1, role=f"{role}-{position}")
            if url:
                participants.append(
                    {
                        "type": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": code,
                                    }
                                ]
                            }
                        ],
                        "individual": {"reference": url},
                    }
                )
    if participants:
        encounter["participant"] = participants
    locations = []
    current = location_add(mapping, pv1.first(3), segment=pv1, role="assigned")
    if current:
        locations.append(
            {"location": {"reference": current}, "status": "active" if status != "finished" else "completed"}
        )
    if trigger == "A02":
        prior = location_add(mapping, pv1.first(6), segment=pv1, role="prior")
        if prior and prior != current:
            locations.insert(0, {"location": {"reference": prior}, "status": "completed"})
    if locations:
        encounter["location"] = locations
    disposition = pv1.first(36)
    if disposition.get(1):
        encounter["hospitalization"] = {
            "dischargeDisposition": codeable_concept(
                disposition, default_system=codes.DISCHARGE_DISPOSITION_SYSTEM
            )
        }
    return mapping.add(encounter, segment=pv1)


def merge_map(mapping: MessageMapping, mrg: Segment, *, survivor: JSON, survivor_url: str) -> str | None:
    """A40: MRG-1 names the duplicate patient record merged into the PID one.

    The survivor keeps the prior identifiers (use "old") so that later messages using them still
    find it, and links with "replaces" to the prior Patient. The prior Patient is sent as an inactive
    record with the same id its own messages gave it (ids come from the identifier) and a
    "replaced-by" link: the store updates that record instead of inventing a new one. It comes first
    in the Bundle so that the prior identifiers end up pointing at the survivor.
    """
    prior_identifiers = [found for found in (identifier(c, use="old") for c in mrg.repetitions(1)) if found]
    if not prior_identifiers:
        mapping.problems.append(
            Problem(mapping.location(mrg, 1), "MRG-1 prior patient identifier is missing")
        )
        return None
    prior_id = stable_id("Patient", *identifier_key(prior_identifiers[0]))
    if prior_id == survivor["id"]:
        return None  # merging a record into itself changes nothing
    prior: JSON = {
        "resourceType": "Patient",
        "id": prior_id,
        "active": False,
        "identifier": prior_identifiers,
        "link": [{"other": {"reference": survivor_url}, "type": "replaced-by"}],
    }
    prior_url = mapping.add(prior, segment=mrg, role="prior")
    known = {identifier_key(found) for found in survivor.get("identifier", [])}
    survivor.setdefault("identifier", []).extend(
        found for found in prior_identifiers if identifier_key(found) not in known
    )
    survivor["link"] = [{"other": {"reference": prior_url}, "type": "replaces"}]
    return prior_url
