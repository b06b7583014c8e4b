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

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

from patients.ingest.entries import JSON, Problem
from patients.ingest.hl7v2 import codes
from patients.ingest.hl7v2.dates import InvalidDate, datetime_parse, fhir_date, fhir_datetime, offset_read
from patients.ingest.hl7v2.parse import Composite, Message, Segment

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://concord.invalid/hl7v2")

SUPPORTED_MESSAGE_TYPES = (
    "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A05", "ADT^A08", "ADT^A11", "ADT^A13", "ADT^A28",
    "ADT^A31", "ADT^A40", "ORU^R01", "SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15",
)  # fmt: skip
PATIENT_ONLY_EVENTS = {"A28", "A31"}

# Encounter.status by ADT trigger. A11 (cancel admit/visit) is "cancelled": the visit ended before it
# began, which R4 defines as cancelled; "entered-in-error" would claim the admission was never
# meant, which the sender did not say. A13 (cancel discharge) puts the patient back in care, so the
# encounter is "in-progress" again and its end is dropped.
ENCOUNTER_STATUSES = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "in-progress",
    "A05": "planned",
    "A08": "in-progress",
    "A11": "cancelled",
    "A13": "in-progress",
}
# Events whose own time is the start of the visit when PV1-44 is absent.
ADMISSION_EVENTS = {"A01", "A04"}
APPOINTMENT_STATUSES = {"S12": "booked", "S13": "booked", "S14": "booked", "S15": "cancelled"}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
_UCUM_UNITS = {
    "%", "/min", "{beats}/min", "mm[Hg]", "Cel", "[degF]", "kg", "g", "mg", "ug", "ng", "cm", "m", "mm", "L",
    "mL", "dL", "mg/dL", "g/dL", "g/L", "mg/L", "ug/L", "ng/mL", "pg/mL", "mmol/L", "umol/L", "nmol/L",
    "pmol/L", "mEq/L", "meq/L", "U/L", "[IU]/L", "m[IU]/mL", "fL", "pg", "10*3/uL", "10*6/uL", "10*9/L",
    "10*12/L", "kg/m2", "m2", "mL/min", "mL/min/{1.73_m2}", "s", "min", "h", "d", "wk", "mo", "a", "[in_i]",
    "[lb_av]", "[ft_i]", "%{saturation}", "mosm/kg", "/uL", "/[HPF]", "/[LPF]", "1", "{ratio}", "[pH]",
}  # fmt: skip
_UCUM_SYSTEM_IDS = {"UCUM", "ANSI+", "ISO+", "ANS+"}
_COMPARATORS = {"<", "<=", ">", ">="}
_REFERENCE_RANGE = re.compile(r"^\s*(?P<low>[+-]?\d*\.?\d+)\s*-\s*(?P<high>[+-]?\d*\.?\d+)\s*$")
_REFERENCE_BOUND = re.compile(r"^\s*(?P<comparator>[<>]=?)\s*(?P<value>[+-]?\d*\.?\d+)\s*$")
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def _number(text: str) -> int | float | None:
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    return float(text) if "." in text else int(text)


@dataclass
class MessageMapping:
    """The resources one message maps to, with the problems found on the way."""

    message: Message
    default_timezone: str
    entries: list[JSON] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    control_id: str = ""
    default_offset: str | None = None
    practitioners: dict[str, str] = field(default_factory=dict)  # resource id -> full URL
    locations: dict[str, str] = field(default_factory=dict)

    def add(self, resource: JSON, *, segment: Segment, role: str = "") -> str:
        key = f"{self.control_id}|{self.message.number}|{segment.position}|{resource['resourceType']}|{role}"
        full_url = f"urn:uuid:{stable_id('fullUrl', key)}"
        self.entries.append(
            {
                "fullUrl": full_url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
        return full_url

    def location(self, segment: Segment, number: int) -> str:
        return self.message.location(segment, number)

    def datetime(self, segment: Segment, number: int, *, component: int = 1) -> str | None:
        value = segment.get(number, component)
        if not value:
            return None
        try:
            return fhir_datetime(
                value, default_offset=self.default_offset, default_timezone=self.default_timezone
            )
        except InvalidDate as error:
            self.problems.append(
                Problem(self.location(segment, number), f"invalid date/time: the value {error}")
            )
            return None

    def date(self, segment: Segment, number: int) -> str | None:
        value = segment.get(number)
        if not value:
            return None
        try:
            return fhir_date(value)
        except InvalidDate as error:
            self.problems.append(Problem(self.location(segment, number), f"invalid date: the value {error}"))
            return None


# -- data types ---------------------------------------------------------------------------------------


def _authority_system(namespace: str, universal_id: str, universal_type: str) -> str:
    """The identifier system for an assigning authority (HD): its OID or URI when given, else its name."""
    kind = universal_type.upper()
    if universal_id and kind == "ISO":
        return f"urn:oid:{universal_id}"
    if universal_id and kind in {"URI", "URL"}:
        return universal_id
    name = namespace or universal_id
    # A FHIR uri has no white space; a name such as "CITY HOSP" is percent-encoded, not altered.
    return quote(name, safe=":/.-_~") if any(character.isspace() for character in name) else name


def codeable_concept(composite: Composite, *, default_system: str = "") -> JSON | None:
    """CE/CWE/CNE: code^text^system^alternate code^alternate text^alternate system."""
    codings = []
    for offset in (0, 3):
        code = composite.get(1 + offset)
        if not code:
            continue
        coding: JSON = {"code": code}
        system = codes.coding_system(composite.get(3 + offset)) or default_system
        if system:
            coding["system"] = system
        display = composite.get(2 + offset)
        if display:
            coding["display"] = display
        codings.append(coding)
    text = composite.get(9) or ("" if codings else composite.get(2))
    if not codings and not text:
        return None
    concept: JSON = {}
    if codings:
        concept["coding"] = codings
    if text:
        concept["text"] = text
    return concept


def identifier(composite: Composite, *, use: str = "") -> JSON | None:
    """CX: id^check digit^scheme^assigning authority (HD)^identifier type."""
    value = composite.get(1)
    if not value:
        return None
    result: JSON = {"value": value}
    if use:
        result["use"] = use
    system = _authority_system(composite.get(4, 1), composite.get(4, 2), composite.get(4, 3))
    if system:
        result["system"] = system
    type_code = composite.get(5)
    if type_code:
        result["type"] = {"coding": [{"system": codes.IDENTIFIER_TYPE_SYSTEM, "code": type_code}]}
    return result


def entity_identifier(composite: Composite) -> JSON | None:
    """EI: entity id^namespace^universal id^universal id type."""
    value = composite.get(1)
    if not value:
        return None
    result: JSON = {"value": value}
    system = _authority_system(composite.get(2), composite.get(3), composite.get(4))
    if system:
        result["system"] = system
    return result


_NAME_USES = {"L": "official", "D": "usual", "M": "maiden", "N": "nickname", "S": "anonymous", "A": "usual"}


def human_name(composite: Composite, *, family_at: int = 1) -> JSON | None:
    """XPN (family at 1) or the name part of XCN (family at 2): family^given^middle^suffix^prefix^degree^type."""
    family = composite.get(family_at)
    given = [part for part in (composite.get(family_at + 1), composite.get(family_at + 2)) if part]
    if not family and not given:
        return None
    name: JSON = {}
    use = _NAME_USES.get(composite.get(family_at + 6))
    if use:
        name["use"] = use
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    prefix = composite.get(family_at + 4)
    if prefix:
        name["prefix"] = [prefix]
    # Suffix (XPN-4), degree (XPN-6) and professional suffix (XPN-14) are all FHIR suffixes.
    suffixes = [part for part in (composite.get(family_at + 3), composite.get(family_at + 5),
                                  composite.get(family_at + 13)) if part]  # fmt: skip
    if suffixes:
        name["suffix"] = suffixes
    return name


def address(composite: Composite) -> JSON | None:
    """XAD: street^other designation^city^state^postal code^country^address type^^county."""
    result: JSON = {}
    lines = [part for part in (composite.get(1), composite.get(2)) if part]
    if lines:
        result["line"] = lines
    for number, key in ((3, "city"), (4, "state"), (5, "postalCode"), (6, "country"), (9, "district")):
        value = composite.get(number)
        if value:
            result[key] = value
    if not result:
        return None
    address_type = composite.get(7)
    if address_type in codes.ADDRESS_USES:
        result["use"] = codes.ADDRESS_USES[address_type]
    elif address_type in codes.ADDRESS_TYPES:
        result["type"] = codes.ADDRESS_TYPES[address_type]
    return result


def contact_point(composite: Composite, *, default_use: str) -> JSON | None:
    """XTN: formatted^use^equipment^email^country^area^number^extension^...^unformatted (12)."""
    equipment = composite.get(3)
    email = composite.get(4)
    formatted = composite.get(1)
    if equipment in {"Internet", "X.400"} or (not formatted and email):
        value = email or formatted
        system = "email"
    else:
        value = formatted or composite.get(12)
        if not value and composite.get(7):
            area = composite.get(6)
            value = f"({area}) {composite.get(7)}" if area else composite.get(7)
            if composite.get(8):
                value += f" ext. {composite.get(8)}"
        system = codes.TELECOM_SYSTEMS.get(equipment, "phone")
    if not value:
        return None
    point: JSON = {"system": system, "value": value}
    # PID-13 is the home number and PID-14 the work one, unless XTN-2 says otherwise; an e-mail address
    # (XTN-2 "NET") has no use of its own.
    use = codes.TELECOM_USES.get(composite.get(2)) or (default_use if system != "email" else "")
    if use:
        point["use"] = use
    return point


# -- resources ----------------------------------------------------------------------------------------


def _identifier_key(found: JSON) -> tuple[str, str]:
    return str(found.get("system", "")), str(found["value"])


def patient_map(mapping: MessageMapping, pid: Segment) -> tuple[JSON, str]:
    """PID -> Patient; returns the resource and its id."""
    identifiers: list[JSON] = []
    for number, use in ((3, ""), (2, "old"), (4, "secondary")):
        for composite in pid.repetitions(number):
            found = identifier(composite, use=use)
            if found is not None and _identifier_key(found) not in {_identifier_key(i) for i in identifiers}:
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
        system, value = _identifier_key(identifiers[0])
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
        if (_BCP47.match(code) and len(code) == 2) or "-" in code:
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
    system = _authority_system(composite.get(9, 1), composite.get(9, 2), composite.get(9, 3))
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
        encounter_id = stable_id("Encounter", *_identifier_key(visit))
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
    if start is None and trigger in ADMISSION_EVENTS:
        start = (mapping.datetime(evn, 6) if evn is not None else None) or mapping.datetime(
            mapping.message.header, 7
        )
    end = mapping.datetime(pv1, 45)
    status = ENCOUNTER_STATUSES.get(trigger, "finished" if end else "in-progress")
    pv2 = mapping.message.one("PV2")
    if status == "planned" and pv2 is not None:
        # A planned visit has no actual times yet: its period is the expected one (PV2-8 admit, PV2-9 discharge).
        start = start or mapping.datetime(pv2, 8)
        end = end or mapping.datetime(pv2, 9)
    if trigger == "A08" and end:
        status = "finished"
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


def _quantity(value: int | float, unit: Composite) -> JSON:
    quantity: JSON = {"value": value}
    code = unit.get(1)
    if code:
        # Quantity.unit is for people (CWE-2 text when sent), Quantity.code for machines.
        quantity["unit"] = unit.get(2) or code
        # Only a unit that is UCUM gets the UCUM system: a local unit ("beats/min") stays display text.
        if unit.get(3).upper() in _UCUM_SYSTEM_IDS or code in _UCUM_UNITS:
            quantity["system"] = "http://unitsofmeasure.org"
            quantity["code"] = code
    return quantity


def _observation_value(mapping: MessageMapping, obx: Segment) -> JSON:
    """OBX-5 by its value type OBX-2; an empty or unsupported value gives no value element."""
    value_type = obx.get(2).upper()
    values = obx.repetitions(5)
    if not values:
        return {}
    first = values[0]
    unit = obx.first(6)
    if value_type == "NM":
        number = _number(first.get(1))
        if number is None:
            mapping.problems.append(
                Problem(mapping.location(obx, 5), "value type NM but the value is not a number")
            )
            return {}
        return {"valueQuantity": _quantity(number, unit)}
    if value_type in {"ST", "TX", "FT"}:
        return {"valueString": "\n".join(composite.text() for composite in values)}
    if value_type in {"CE", "CWE", "CNE", "CF"}:
        concept = codeable_concept(first)
        return {"valueCodeableConcept": concept} if concept else {}
    if value_type in {"DT", "TS", "DTM"}:
        moment = mapping.datetime(obx, 5)
        return {"valueDateTime": moment} if moment else {}
    if value_type == "SN":
        return _structured_numeric(mapping, obx, first, unit)
    return {}


def _structured_numeric(mapping: MessageMapping, obx: Segment, value: Composite, unit: Composite) -> JSON:
    """SN: comparator^number^separator/suffix^number (e.g. >^100, ^1^:^128, ^10^-^20)."""
    comparator, separator = value.get(1), value.get(3)
    first, second = _number(value.get(2)), _number(value.get(4))
    if first is None or (value.get(4) and second is None) or comparator not in _COMPARATORS | {"", "="}:
        mapping.problems.append(
            Problem(mapping.location(obx, 5), "value type SN but the value is not a structured numeric")
        )
        return {}
    if second is not None and separator in {":", "/"}:
        return {"valueRatio": {"numerator": {"value": first}, "denominator": {"value": second}}}
    if second is not None and separator in {"-", ""}:
        return {"valueRange": {"low": _quantity(first, unit), "high": _quantity(second, unit)}}
    quantity = _quantity(first, unit)
    if comparator in _COMPARATORS:
        quantity["comparator"] = comparator
    return {"valueQuantity": quantity}


def _reference_range(text: str, unit: Composite) -> JSON | None:
    if not text.strip():
        return None
    between = _REFERENCE_RANGE.match(text)
    if between:
        low, high = _number(between.group("low")), _number(between.group("high"))
        if low is not None and high is not None:
            return {"low": _quantity(low, unit), "high": _quantity(high, unit)}
    bound = _REFERENCE_BOUND.match(text)
    if bound:
        number = _number(bound.group("value"))
        if number is not None:
            return {"high" if bound.group("comparator").startswith("<") else "low": _quantity(number, unit)}
    return {"text": text.strip()}


def observation_map(
    mapping: MessageMapping,
    obx: Segment,
    *,
    patient_url: str,
    encounter_url: str | None,
    report_key: str,
    occurrence: int,
    effective: str | None,
) -> str:
    code = codeable_concept(obx.first(3)) or {"text": "unspecified observation"}
    code_key = obx.get(3) or obx.get(3, 2)
    if report_key:
        observation_id = stable_id("Observation", report_key, code_key, obx.get(4), str(occurrence))
    else:
        observation_id = stable_id(
            "Observation", mapping.control_id, str(mapping.message.number), str(obx.position)
        )
    status_code = obx.get(11).upper()
    observation: JSON = {
        "resourceType": "Observation",
        "id": observation_id,
        "status": codes.OBSERVATION_STATUSES.get(status_code, "unknown"),
        "code": code,
        "subject": {"reference": patient_url},
    }
    if encounter_url:
        observation["encounter"] = {"reference": encounter_url}
    observed_at = mapping.datetime(obx, 14) or effective
    if observed_at:
        observation["effectiveDateTime"] = observed_at
    observation.update(_observation_value(mapping, obx))
    interpretations = []
    for composite in obx.repetitions(8):
        flag = composite.get(1)
        if flag:
            coding: JSON = {"code": flag}
            if flag.upper() in codes.INTERPRETATIONS:
                coding["system"] = codes.INTERPRETATION_SYSTEM
            interpretations.append({"coding": [coding]})
    if interpretations:
        observation["interpretation"] = interpretations
    reference_range = _reference_range(obx.first(7).text() if obx.repetitions(7) else "", obx.first(6))
    if reference_range:
        observation["referenceRange"] = [reference_range]
    return mapping.add(observation, segment=obx)


def report_map(
    mapping: MessageMapping, obr: Segment, *, patient_url: str, encounter_url: str | None
) -> tuple[JSON, str]:
    order = entity_identifier(obr.first(3)) or entity_identifier(obr.first(2))
    if order is not None:
        report_key = "|".join(_identifier_key(order))
        report_id = stable_id("DiagnosticReport", report_key)
    else:
        report_key = ""
        report_id = stable_id(
            "DiagnosticReport", mapping.control_id, str(mapping.message.number), str(obr.position)
        )
    report: JSON = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "status": codes.REPORT_STATUSES.get(obr.get(25).upper(), "unknown"),
        "code": codeable_concept(obr.first(4)) or {"text": "unspecified report"},
        "subject": {"reference": patient_url},
    }
    if order is not None:
        report["identifier"] = [order]
    if encounter_url:
        report["encounter"] = {"reference": encounter_url}
    effective = mapping.datetime(obr, 7)
    if effective:
        report["effectiveDateTime"] = effective
    return report, report_key


def appointment_map(mapping: MessageMapping, sch: Segment, *, patient_url: str, trigger: str) -> None:
    message = mapping.message
    key = entity_identifier(sch.first(1)) or entity_identifier(sch.first(2))
    if key is not None:
        appointment_id = stable_id("Appointment", *_identifier_key(key))
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
        duration = _number(ais.get(7))
        unit = ais.get(8).upper() or "MIN"
        if duration is not None and unit in codes.MINUTES_PER_UNIT:
            minutes = round(duration * codes.MINUTES_PER_UNIT[unit])
    if minutes is None:
        duration = _number(sch.get(9))
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
    prior_id = stable_id("Patient", *_identifier_key(prior_identifiers[0]))
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
    known = {_identifier_key(found) for found in survivor.get("identifier", [])}
    survivor.setdefault("identifier", []).extend(
        found for found in prior_identifiers if _identifier_key(found) not in known
    )
    survivor["link"] = [{"other": {"reference": prior_url}, "type": "replaces"}]
    return prior_url


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
