"""Source systems and what one of them holds about a person (a record view, before rendering)."""

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from patients.synthetic.people import Address, Person

HOSPITAL_EHR = "hospital-ehr"
CLINIC_EHR = "clinic-ehr"
CRM = "crm"
# Oldest first: a later source holds newer facts (a married name, a new address).
SOURCES = (HOSPITAL_EHR, CLINIC_EHR, CRM)
EHR_SOURCES = (HOSPITAL_EHR, CLINIC_EHR)

MRN_SYSTEMS = {
    HOSPITAL_EHR: "urn:oid:2.16.840.1.113883.3.1001.1",
    CLINIC_EHR: "urn:oid:2.16.840.1.113883.3.1001.2",
}


class PhoneStyle(StrEnum):
    DASHES = "dashes"  # 617-555-0134
    PARENTHESES = "parentheses"  # (617) 555-0134
    DOTS = "dots"  # 617.555.0134
    DIGITS = "digits"  # 6175550134
    INTERNATIONAL = "international"  # +1 617 555 0134


# How each source writes phone numbers when nothing unusual happened.
SOURCE_PHONE_STYLE = {
    HOSPITAL_EHR: PhoneStyle.DASHES,
    CLINIC_EHR: PhoneStyle.PARENTHESES,
    CRM: PhoneStyle.DOTS,
}


def phone_format(digits: str, *, style: PhoneStyle) -> str:
    if not digits:
        return ""
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    match style:
        case PhoneStyle.DASHES:
            return f"{area}-{exchange}-{line}"
        case PhoneStyle.PARENTHESES:
            return f"({area}) {exchange}-{line}"
        case PhoneStyle.DOTS:
            return f"{area}.{exchange}.{line}"
        case PhoneStyle.DIGITS:
            return digits
        case PhoneStyle.INTERNATIONAL:
            return f"+1 {area} {exchange} {line}"


@dataclass
class RecordView:
    """The demographics one source holds for one person; mutated while disagreements are applied."""

    source: str
    source_record_id: str
    given: str
    middle: str
    family: str
    suffix: str  # "Jr" or ""
    birth_date: date
    sex: str  # "female", "male" or "unknown"
    mobile_phone: str  # ten digits or ""
    home_phone: str
    email: str
    address: Address
    preferred_language: str
    phone_style: PhoneStyle
    medical_record_number: str = ""  # this source's own MRN (EHRs only)
    known_hospital_mrn: str = ""  # the hospital MRN, when the CRM knows it
    disagreements: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, person: Person, *, source: str, source_record_id: str) -> "RecordView":
        return cls(
            source=source,
            source_record_id=source_record_id,
            given=person.given,
            middle=person.middle,
            family=person.family,
            suffix=person.suffix,
            birth_date=person.birth_date,
            sex=person.sex,
            mobile_phone=person.mobile_phone,
            home_phone=person.home_phone,
            email=person.email,
            address=person.address,
            preferred_language=person.preferred_language,
            phone_style=SOURCE_PHONE_STYLE[source],
            medical_record_number=person.medical_record_numbers.get(source, ""),
        )

    @property
    def formatted_mobile_phone(self) -> str:
        return phone_format(self.mobile_phone, style=self.phone_style)

    @property
    def formatted_home_phone(self) -> str:
        return phone_format(self.home_phone, style=self.phone_style)
