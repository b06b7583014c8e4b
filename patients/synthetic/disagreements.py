"""How source records come to disagree with the truth, at rates seen in real registration data.

Every disagreement applied to a record is tagged on that record, so a record without tags carries
exactly the person's truth (apart from its source's usual phone style). Life events (a new phone, a
move, a marriage) are tagged on the newer record that knows about them; the older records keep the
values in the ``Person`` truth, and the person carries the newer value alongside.

Transposed birth-date digits draw from a stream of their own (``transposition_randomness``): the kind
came later, and drawing it from the main stream would have changed every record drawn after it,
including the Synthea CRM export the demo loader and its tests pin.
"""

import dataclasses
import random
from datetime import date
from enum import StrEnum

from patients.synthetic.names import has_diacritics, nicknames_for, one_character_typo, without_diacritics
from patients.synthetic.people import REFERENCE_DATE, Person, PersonMaker, age_in_years
from patients.synthetic.records import CLINIC_EHR, CRM, HOSPITAL_EHR, SOURCES, PhoneStyle, RecordView


class Disagreement(StrEnum):
    NEW_PHONE = "new_phone"  # the CRM has a new mobile phone; the EHRs keep the old one
    MOVED_ADDRESS = "moved_address"  # the CRM has the newer address
    MARRIED_NAME = "married_name"  # the newest source has the married family name
    NICKNAME = "nickname"  # Bill for William
    SWAPPED_DAY_MONTH = "swapped_day_month"  # 1980-03-07 recorded as 1980-07-03
    TRANSPOSED_BIRTH_DATE_DIGITS = "transposed_birth_date_digits"  # 1987-03-12 as 1978-03-12 or 1987-03-21
    TYPO = "typo"  # one-character edit in the given or family name
    MISSING_EMAIL = "missing_email"
    MISSING_PHONE = "missing_phone"  # no phone at all
    MISSING_MIDDLE_NAME = "missing_middle_name"
    MISSING_SUFFIX = "missing_suffix"  # "Jr" left out
    MISSING_SEX = "missing_sex"  # recorded as unknown
    DIACRITICS_REMOVED = "diacritics_removed"  # José stored as Jose
    UPPER_CASE_NAME = "upper_case_name"  # JOHN SMITH
    PHONE_FORMAT = "phone_format"  # a phone style other than the source's usual one


# Per person, among the people the event can happen to (see apply_person_events).
PERSON_EVENT_RATES: dict[Disagreement, float] = {
    Disagreement.NEW_PHONE: 0.12,  # people with a mobile phone and a CRM record
    Disagreement.MOVED_ADDRESS: 0.10,  # people with a CRM record
    Disagreement.MARRIED_NAME: 0.15,  # women aged 20+ known to at least two sources
    Disagreement.NICKNAME: 0.35,  # people whose given name has a nickname
    Disagreement.SWAPPED_DAY_MONTH: 0.06,  # people born on day 1-12 of a different month
}

# Per record, by source. EHR registration desks skip e-mail more often; the CRM's web forms skip
# middle names and sex more often; the hospital's legacy system stores ASCII upper case.
RECORD_RATES: dict[Disagreement, dict[str, float]] = {
    Disagreement.TYPO: {HOSPITAL_EHR: 0.06, CLINIC_EHR: 0.06, CRM: 0.08},
    Disagreement.MISSING_EMAIL: {HOSPITAL_EHR: 0.30, CLINIC_EHR: 0.20, CRM: 0.05},
    Disagreement.MISSING_PHONE: {HOSPITAL_EHR: 0.04, CLINIC_EHR: 0.04, CRM: 0.06},
    Disagreement.MISSING_MIDDLE_NAME: {HOSPITAL_EHR: 0.20, CLINIC_EHR: 0.30, CRM: 0.40},
    # The CRM has no suffix field: "Jr" survives there only when typed after the last name.
    Disagreement.MISSING_SUFFIX: {HOSPITAL_EHR: 0.15, CLINIC_EHR: 0.25, CRM: 0.40},
    # Keyed by hand from a form or a card: rare, and no more likely at one desk than another.
    Disagreement.TRANSPOSED_BIRTH_DATE_DIGITS: {HOSPITAL_EHR: 0.01, CLINIC_EHR: 0.01, CRM: 0.01},
    Disagreement.MISSING_SEX: {HOSPITAL_EHR: 0.005, CLINIC_EHR: 0.01, CRM: 0.04},
    Disagreement.DIACRITICS_REMOVED: {HOSPITAL_EHR: 0.60, CLINIC_EHR: 0.40, CRM: 0.30},
    Disagreement.UPPER_CASE_NAME: {HOSPITAL_EHR: 0.15, CLINIC_EHR: 0.05, CRM: 0.05},
    Disagreement.PHONE_FORMAT: {HOSPITAL_EHR: 0.10, CLINIC_EHR: 0.10, CRM: 0.20},
}

# Registration systems refuse birth dates before this, so a transposition that lands earlier is not typed.
_EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def apply_person_events(
    person: Person, *, views: dict[str, RecordView], randomness: random.Random, maker: PersonMaker
) -> Person:
    """Apply the events that concern a person across sources; return the person with life events set."""
    present = [source for source in SOURCES if source in views]
    crm = views.get(CRM)
    if (
        crm is not None
        and person.mobile_phone
        and randomness.random() < PERSON_EVENT_RATES[Disagreement.NEW_PHONE]
    ):
        crm.mobile_phone = maker.phone()
        crm.disagreements.append(Disagreement.NEW_PHONE)
        person = dataclasses.replace(person, new_mobile_phone=crm.mobile_phone)
    if crm is not None and randomness.random() < PERSON_EVENT_RATES[Disagreement.MOVED_ADDRESS]:
        crm.address = maker.address(state=person.address.state)
        crm.disagreements.append(Disagreement.MOVED_ADDRESS)
        person = dataclasses.replace(person, new_address=crm.address)
    if (
        person.sex == "female"
        and age_in_years(person.birth_date) >= 20
        and len(present) >= 2
        and randomness.random() < PERSON_EVENT_RATES[Disagreement.MARRIED_NAME]
    ):
        newest = views[present[-1]]
        newest.family = maker.married_family_name(current=person.family)
        newest.disagreements.append(Disagreement.MARRIED_NAME)
        person = dataclasses.replace(person, married_family=newest.family)
    nicknames = nicknames_for(person.given)
    if nicknames and randomness.random() < PERSON_EVENT_RATES[Disagreement.NICKNAME]:
        view = views[randomness.choice(present)]
        view.given = randomness.choice(nicknames)
        view.disagreements.append(Disagreement.NICKNAME)
    birth_date = person.birth_date
    if (
        birth_date.day <= 12
        and birth_date.day != birth_date.month
        and randomness.random() < PERSON_EVENT_RATES[Disagreement.SWAPPED_DAY_MONTH]
    ):
        view = views[randomness.choice(present)]
        view.birth_date = date(birth_date.year, birth_date.day, birth_date.month)
        view.disagreements.append(Disagreement.SWAPPED_DAY_MONTH)
    return person


def _happens(kind: Disagreement, *, view: RecordView, randomness: random.Random) -> bool:
    return randomness.random() < RECORD_RATES[kind][view.source]


def transposed_digits(birth_date: date, *, randomness: random.Random) -> date | None:
    """The date with two adjacent, different digits of its year, month or day swapped, or None.

    1987-03-12 gives 1978-03-12 or 1987-03-21: 9187 (after the reference date), 1897 (before 1900)
    and month 30 are no candidates. Digits on either side of a hyphen are not adjacent: a clerk keys
    year, month and day as separate fields.
    """
    text = birth_date.isoformat()
    candidates = []
    for position in range(len(text) - 1):
        first, second = text[position], text[position + 1]
        if not (first.isdigit() and second.isdigit()) or first == second:
            continue
        try:
            candidate = date.fromisoformat(text[:position] + second + first + text[position + 2 :])
        except ValueError:
            continue
        if _EARLIEST_BIRTH_DATE <= candidate <= REFERENCE_DATE:
            candidates.append(candidate)
    return randomness.choice(candidates) if candidates else None


def apply_record_damage(
    view: RecordView, *, randomness: random.Random, transposition_randomness: random.Random
) -> None:
    """Apply the disagreements that concern one record only: gaps, typos, formatting.

    ``transposition_randomness`` decides transposed birth-date digits, and nothing else.
    """
    if view.middle and _happens(Disagreement.MISSING_MIDDLE_NAME, view=view, randomness=randomness):
        view.middle = ""
        view.disagreements.append(Disagreement.MISSING_MIDDLE_NAME)
    # Drawn only for records with a suffix, so that the records of everyone else draw as before.
    if view.suffix and _happens(Disagreement.MISSING_SUFFIX, view=view, randomness=randomness):
        view.suffix = ""
        view.disagreements.append(Disagreement.MISSING_SUFFIX)
    if _happens(Disagreement.TRANSPOSED_BIRTH_DATE_DIGITS, view=view, randomness=transposition_randomness):
        transposed = transposed_digits(view.birth_date, randomness=transposition_randomness)
        if transposed is not None:
            view.birth_date = transposed
            view.disagreements.append(Disagreement.TRANSPOSED_BIRTH_DATE_DIGITS)
    if view.email and _happens(Disagreement.MISSING_EMAIL, view=view, randomness=randomness):
        view.email = ""
        view.disagreements.append(Disagreement.MISSING_EMAIL)
    if (view.mobile_phone or view.home_phone) and _happens(
        Disagreement.MISSING_PHONE, view=view, randomness=randomness
    ):
        view.mobile_phone = view.home_phone = ""
        view.disagreements.append(Disagreement.MISSING_PHONE)
    if _happens(Disagreement.MISSING_SEX, view=view, randomness=randomness):
        view.sex = "unknown"
        view.disagreements.append(Disagreement.MISSING_SEX)
    if _happens(Disagreement.TYPO, view=view, randomness=randomness):
        if randomness.random() < 0.5:
            view.given = one_character_typo(view.given, randomness=randomness)
        else:
            view.family = one_character_typo(view.family, randomness=randomness)
        view.disagreements.append(Disagreement.TYPO)
    names = (view.given, view.middle, view.family)
    if any(has_diacritics(name) for name in names) and _happens(
        Disagreement.DIACRITICS_REMOVED, view=view, randomness=randomness
    ):
        view.given, view.middle, view.family = (without_diacritics(name) for name in names)
        view.disagreements.append(Disagreement.DIACRITICS_REMOVED)
    if _happens(Disagreement.UPPER_CASE_NAME, view=view, randomness=randomness):
        view.given, view.middle, view.family = view.given.upper(), view.middle.upper(), view.family.upper()
        view.suffix = view.suffix.upper()
        view.disagreements.append(Disagreement.UPPER_CASE_NAME)
    if (view.mobile_phone or view.home_phone) and _happens(
        Disagreement.PHONE_FORMAT, view=view, randomness=randomness
    ):
        view.phone_style = randomness.choice([style for style in PhoneStyle if style != view.phone_style])
        view.disagreements.append(Disagreement.PHONE_FORMAT)
