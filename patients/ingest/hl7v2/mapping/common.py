"""Shared by the HL7 v2 mappers: stable ids, the per-message mapping state, and v2 data types to FHIR."""

import re
import uuid
from dataclasses import dataclass, field

from patients.ingest.entries import JSON, Problem
from patients.ingest.hl7v2 import codes
from patients.ingest.hl7v2.dates import InvalidDate, fhir_date, fhir_datetime
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
# encounter is "in-progress" again and its end is dropped. A08 (update patient information) is not
# here: it does not convey the status (the v2-to-FHIR Event[EncounterStatus] map says so), which then
# comes from PV1-45 and PV1-2 as for any other message.
ENCOUNTER_STATUSES = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "in-progress",
    "A05": "planned",
    "A11": "cancelled",
    "A13": "in-progress",
}
# Events whose own time is the start of the visit when PV1-44 is absent.
ADMISSION_EVENTS = {"A01", "A04"}
APPOINTMENT_STATUSES = {"S12": "booked", "S13": "booked", "S14": "booked", "S15": "cancelled"}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
UCUM_UNITS = {
    "%", "/min", "{beats}/min", "mm[Hg]", "Cel", "[degF]", "kg", "g", "mg", "ug", "ng", "cm", "m", "mm", "L",
    "mL", "dL", "mg/dL", "g/dL", "g/L", "mg/L", "ug/L", "ng/mL", "pg/mL", "mmol/L", "umol/L", "nmol/L",
    "pmol/L", "mEq/L", "meq/L", "U/L", "[IU]/L", "m[IU]/mL", "fL", "pg", "10*3/uL", "10*6/uL", "10*9/L",
    "10*12/L", "kg/m2", "m2", "mL/min", "mL/min/{1.73_m2}", "s", "min", "h", "d", "wk", "mo", "a", "[in_i]",
    "[lb_av]", "[ft_i]", "%{saturation}", "mosm/kg", "/uL", "/[HPF]", "/[LPF]", "1", "{ratio}", "[pH]",
}  # fmt: skip
UCUM_SYSTEM_IDS = {"UCUM", "ANSI+", "ISO+", "ANS+"}
COMPARATORS = {"<", "<=", ">", ">="}
REFERENCE_RANGE = re.compile(r"^\s*(?P<low>[+-]?\d*\.?\d+)\s*-\s*(?P<high>[+-]?\d*\.?\d+)\s*$")
REFERENCE_BOUND = re.compile(r"^\s*(?P<comparator>[<>]=?)\s*(?P<value>[+-]?\d*\.?\d+)\s*$")
BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def number_parse(text: str) -> int | float | None:
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


def authority_system(namespace: str, universal_id: str, universal_type: str) -> str:
    """The identifier system for an assigning authority (HD): its OID or URI when given, else its name."""
    kind = universal_type.upper()
    if universal_id and kind == "ISO":
        return f"urn:oid:{universal_id}"
    if universal_id and kind in {"URI", "URL"}:
        return universal_id
    return codes.local_name_uri(namespace or universal_id)


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
    system = authority_system(composite.get(4, 1), composite.get(4, 2), composite.get(4, 3))
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
    system = authority_system(composite.get(2), composite.get(3), composite.get(4))
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
    """XAD: street (SAD)^other designation^city^state^postal code^country^address type^^county...^addressee (19).

    Lines follow the HL7 v2-to-FHIR XAD and SAD maps: SAD-1 street or mailing address, SAD-2 street name
    and SAD-3 dwelling number are lines 1 to 3, XAD-2 other designation line 4, XAD-19 addressee line 5.
    """
    result: JSON = {}
    street = [composite.get(1, subcomponent) for subcomponent in (1, 2, 3)]
    lines = [part for part in (*street, composite.get(2), composite.get(19)) if part]
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


def identifier_key(found: JSON) -> tuple[str, str]:
    return str(found.get("system", "")), str(found["value"])
