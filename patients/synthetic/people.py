"""The truth about synthetic people: who they are, before any source system records them.

Besides people drawn one by one, ``PersonMaker`` draws the look-alikes a patient index must keep apart
(``HardNegative``): twins, two people with one common name, a father and the son named after him (Jr),
a household sharing one home phone, and a cluster of different women all called Maria Garcia.
"""

import dataclasses
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from faker import Faker

from patients.synthetic.names import (
    COMMON_NAMES,
    FORMAL_NAMES,
    SAME_NAME,
    nicknames_for,
    without_diacritics,
)

# The "today" of the synthetic world. Fixed, so that output does not change with the calendar.
REFERENCE_DATE = date(2025, 6, 30)

# Area codes of the region the hub serves, so that phone numbers look local.
_AREA_CODES = ("617", "857", "508", "774", "781", "339", "978", "351", "413", "603", "401", "860")
_STATES = ("MA", "NH", "RI", "CT", "ME", "VT", "NY")
_STATE_WEIGHTS = (80, 5, 5, 4, 2, 2, 2)
# Reserved for documentation (RFC 2606), so no generated address can reach a real mailbox.
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

# Naming a child after a parent, with "Jr", is mostly a father-and-son custom of English speakers;
# Spanish speakers have it too ("hijo"), and a few daughters carry their mother's name the same way.
_JUNIOR_LANGUAGE_WEIGHTS = {"en": 85, "es": 15}
JUNIOR_SON_SHARE = 0.9
JUNIOR_SAME_MIDDLE_NAME_RATE = 0.7
JUNIOR_SUFFIX = "Jr"
HOUSEHOLD_SIZE_WEIGHTS = {2: 45, 3: 35, 4: 20}
HOUSEHOLD_PARTNER_RATE = 0.5  # households with a second adult; the other members are children
HOUSEHOLD_SAME_FAMILY_NAME_RATE = 0.8
# A family e-mail is common where one adult handles the family's appointments.
HOUSEHOLD_SHARED_EMAIL_RATE = 0.3
# Below this age a child has no mobile phone: the household's home phone is their only number.
_CHILD_WITHOUT_PHONE_AGE = 12


def age_in_years(birth_date: date) -> int:
    """Age in whole years on the reference date."""
    had_birthday = (REFERENCE_DATE.month, REFERENCE_DATE.day) >= (birth_date.month, birth_date.day)
    return REFERENCE_DATE.year - birth_date.year - (0 if had_birthday else 1)


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 where one exists
    display: str
    weight: float
    faker_locale: str  # where names for speakers of the language come from


LANGUAGES: tuple[Language, ...] = (
    Language("en", "English", 0.70, "en_US"),
    Language("es", "Spanish", 0.14, "es_MX"),
    Language("zh", "Chinese", 0.04, "zh_CN"),
    Language("vi", "Vietnamese", 0.04, "vi_VN"),
    Language("pt", "Portuguese", 0.03, "pt_BR"),
    Language("fr", "French", 0.03, "fr_FR"),
    Language("ht", "Haitian Creole", 0.02, "fr_FR"),
)
LANGUAGE_BY_CODE: dict[str, Language] = {language.code: language for language in LANGUAGES}


@dataclass(frozen=True)
class Address:
    line1: str
    line2: str
    city: str
    state: str
    postal_code: str

    @property
    def lines(self) -> list[str]:
        return [line for line in (self.line1, self.line2) if line]


@dataclass(frozen=True)
class Person:
    """One synthetic person as they really are. Phones are ten digits; an empty string means none.

    ``new_mobile_phone``, ``new_address`` and ``married_family`` are life events: the person's current
    values, known only to the sources tagged with the matching disagreement; the other sources still
    carry the values above.
    """

    person_id: str
    given: str
    middle: str
    family: str
    birth_date: date
    sex: str  # "female" or "male"
    mobile_phone: str
    home_phone: str
    email: str
    address: Address
    preferred_language: str
    medical_record_numbers: Mapping[str, str] = field(default_factory=dict)  # source -> MRN
    new_mobile_phone: str = ""
    new_address: Address | None = None
    married_family: str = ""
    suffix: str = ""  # "Jr" for a child named after a parent; FHIR name.suffix


@dataclass(frozen=True)
class HardNegative:
    """Two different people who look alike and must never be merged.

    Kinds: "twins" (same family name, birth date, address and home phone), "common_name" (two people
    with one common name), "junior_senior" (parent first, then the child named after them),
    "shared_phone" (two members of one household) and "same_name" (two of the Maria Garcias).
    """

    kind: str
    person_ids: tuple[str, str]


@dataclass(frozen=True)
class HardNegativeCounts:
    """How many look-alikes of each kind a population gets (see ``hard_negative_counts``)."""

    twins: int  # pairs
    common_name: int  # pairs
    junior_senior: int  # pairs
    shared_phone: int  # households, each of 2-4 people
    same_name: int  # people in the one Maria Garcia cluster


def hard_negative_counts(*, people: int) -> HardNegativeCounts:
    """How many look-alikes of each kind a population of ``people`` gets.

    Twin and common-name pairs are 2% of people each (4% of people in pairs); Jr/Sr pairs 1% (2% of
    people); households one per 150 people (about 1.8% of people); the Maria Garcias 0.2%, at least 3.
    In a large population about 12% of people are in one of them. Populations under 50 get only twins
    and common names, so that small test populations stay plain.
    """
    pairs = 0 if people < 8 else max(1, people // 50)
    if people < 50:
        return HardNegativeCounts(
            twins=pairs, common_name=pairs, junior_senior=0, shared_phone=0, same_name=0
        )
    return HardNegativeCounts(
        twins=pairs,
        common_name=pairs,
        junior_senior=max(1, people // 100),
        shared_phone=max(1, people // 150),
        same_name=max(3, people // 500),
    )


class PersonMaker:
    """Draws people from one seed. Every draw goes through ``randomness`` or the seeded Faker instances."""

    def __init__(self, *, seed: int) -> None:
        self.randomness = random.Random(f"concord-synthetic:{seed}:people")
        self.fakers: dict[str, Faker] = {}
        for locale in sorted({language.faker_locale for language in LANGUAGES}):
            faker = Faker(locale)
            faker.seed_instance(f"{seed}:{locale}")
            self.fakers[locale] = faker
        self.used_phones: set[str] = set()
        self.used_emails: set[str] = set()

    @property
    def english(self) -> Faker:
        return self.fakers["en_US"]

    def language(self) -> Language:
        return self.randomness.choices(LANGUAGES, weights=[language.weight for language in LANGUAGES])[0]

    def given_name(self, *, language: Language, sex: str) -> str:
        formal_names = FORMAL_NAMES.get((language.code, sex), ())
        # Formal names that have nicknames are common anyway; drawing them more often gives the
        # nickname disagreement enough people to act on.
        if formal_names and self.randomness.random() < 0.35:
            return self.randomness.choice(formal_names)
        faker = self.fakers[language.faker_locale]
        if language.code == "zh":
            # Romanized, as US registration systems store them.
            return str(faker.first_romanized_name())
        return str(faker.first_name_female() if sex == "female" else faker.first_name_male())

    def family_name(self, *, language: Language) -> str:
        faker = self.fakers[language.faker_locale]
        if language.code == "zh":
            return str(faker.last_romanized_name())
        return str(faker.last_name())

    def middle_name(self, *, language: Language, sex: str) -> str:
        if language.code in {"zh", "vi"} or self.randomness.random() < 0.35:
            return ""
        faker = self.fakers[language.faker_locale]
        return str(faker.first_name_female() if sex == "female" else faker.first_name_male())

    def birth_date(self) -> date:
        return REFERENCE_DATE - timedelta(days=self.randomness.randrange(0, 92 * 365))

    def _birth_date_aged(self, *, youngest: int, oldest: int) -> date:
        """A birth date of someone aged ``youngest`` to ``oldest`` years on the reference date."""
        return REFERENCE_DATE - timedelta(days=self.randomness.randrange(youngest * 365, oldest * 365))

    def phone(self) -> str:
        while True:
            # 555 exchange: never a real subscriber, yet a valid NANP number for phone libraries.
            number = f"{self.randomness.choice(_AREA_CODES)}555{self.randomness.randrange(10_000):04d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def email(self, *, given: str, family: str) -> str:
        given_part = "".join(c for c in without_diacritics(given).lower() if c.isalnum())
        family_part = "".join(c for c in without_diacritics(family).lower() if c.isalnum())
        pattern = self.randomness.choice(("dotted", "joined", "initial"))
        if pattern == "dotted":
            local = f"{given_part}.{family_part}"
        elif pattern == "joined":
            local = f"{given_part}{family_part}{self.randomness.randrange(1, 100)}"
        else:
            local = f"{given_part[:1]}{family_part}{self.randomness.randrange(1, 100)}"
        domain = self.randomness.choice(_EMAIL_DOMAINS)
        address = f"{local}@{domain}"
        while address in self.used_emails:
            address = f"{local}{self.randomness.randrange(100, 1000)}@{domain}"
        self.used_emails.add(address)
        return address

    def address(self, *, state: str = "") -> Address:
        state = state or self.randomness.choices(_STATES, weights=_STATE_WEIGHTS)[0]
        faker = self.english
        line2 = str(faker.secondary_address()) if self.randomness.random() < 0.2 else ""
        return Address(
            line1=f"{self.randomness.randint(1, 2999)} {faker.street_name()}",
            line2=line2,
            city=str(faker.city()),
            state=state,
            postal_code=str(faker.zipcode_in_state(state)),
        )

    def married_family_name(self, *, current: str) -> str:
        while True:
            family = str(self.english.last_name())
            if family != current:
                return family

    def person(
        self,
        *,
        language: Language | None = None,
        sex: str = "",
        given: str = "",
        family: str = "",
        birth_date: date | None = None,
        address: Address | None = None,
        home_phone: str | None = None,
    ) -> Person:
        """A new person; the keyword arguments pin attributes that a hard negative must share."""
        language = language or self.language()
        sex = sex or self.randomness.choice(("female", "male"))
        given = given or self.given_name(language=language, sex=sex)
        family = family or self.family_name(language=language)
        if home_phone is None:
            home_phone = self.phone() if self.randomness.random() < 0.5 else ""
        return Person(
            person_id="",
            given=given,
            middle=self.middle_name(language=language, sex=sex),
            family=family,
            birth_date=birth_date or self.birth_date(),
            sex=sex,
            mobile_phone=self.phone() if self.randomness.random() < 0.9 else "",
            home_phone=home_phone,
            email=self.email(given=given, family=family) if self.randomness.random() < 0.85 else "",
            address=address or self.address(),
            preferred_language=language.code,
        )

    def different_given_name(self, *, language: Language, sex: str, taken: Iterable[str]) -> str:
        """A given name that is none of ``taken``, nor a nickname of one, nor the formal name of one."""
        taken = set(taken)
        while True:
            given = self.given_name(language=language, sex=sex)
            if given not in taken and not any(
                given in nicknames_for(name) or name in nicknames_for(given) for name in taken
            ):
                return given

    def twin(self, sibling: Person) -> Person:
        """Same family name, birth date, address and home phone; a given name that is not a variant."""
        language = LANGUAGE_BY_CODE[sibling.preferred_language]
        sex = self.randomness.choice(("female", "male"))
        given = self.different_given_name(language=language, sex=sex, taken=(sibling.given,))
        return self.person(
            language=language,
            sex=sex,
            given=given,
            family=sibling.family,
            birth_date=sibling.birth_date,
            address=sibling.address,
            home_phone=sibling.home_phone,
        )

    def common_name_pair(self) -> tuple[Person, Person]:
        """Two unrelated people with the same common name, born at least a year apart."""
        given, family, sex, language_code = self.randomness.choice(COMMON_NAMES)
        language = LANGUAGE_BY_CODE[language_code]
        first = self.person(language=language, sex=sex, given=given, family=family)
        second = self.person(language=language, sex=sex, given=given, family=family)
        while abs((second.birth_date - first.birth_date).days) < 365:
            second = self.person(language=language, sex=sex, given=given, family=family)
        return first, second

    def junior_senior_pair(self) -> tuple[Person, Person]:
        """A parent and the child named after them, 20 to 40 years younger: (senior, junior).

        Same given and family name, mostly the same middle name, same address and home phone; the
        junior carries the suffix "Jr". Mostly father and son (``JUNIOR_SON_SHARE``).
        """
        (language_code,) = self.randomness.choices(
            list(_JUNIOR_LANGUAGE_WEIGHTS), weights=list(_JUNIOR_LANGUAGE_WEIGHTS.values())
        )
        language = LANGUAGE_BY_CODE[language_code]
        sex = "male" if self.randomness.random() < JUNIOR_SON_SHARE else "female"
        junior_birth_date = self._birth_date_aged(youngest=0, oldest=45)
        senior_birth_date = junior_birth_date - timedelta(days=self.randomness.randrange(20 * 365, 40 * 365))
        # Sharing the home phone is what makes the pair hard, so both have one.
        senior = self.person(
            language=language, sex=sex, birth_date=senior_birth_date, home_phone=self.phone()
        )
        junior = self.person(
            language=language,
            sex=sex,
            given=senior.given,
            family=senior.family,
            birth_date=junior_birth_date,
            address=senior.address,
            home_phone=senior.home_phone,
        )
        if self.randomness.random() < JUNIOR_SAME_MIDDLE_NAME_RATE:
            junior = dataclasses.replace(junior, middle=senior.middle)
        return senior, dataclasses.replace(junior, suffix=JUNIOR_SUFFIX)

    def household(self) -> list[Person]:
        """Two to four people at one address sharing one home phone, and sometimes one e-mail address.

        One adult aged 25-75, then a partner (within eight years of them) or children (18 to 45 years
        younger). Given names differ and are no nicknames of each other; birth dates differ; most
        members share the first adult's family name.
        """
        language = self.language()
        sizes = list(HOUSEHOLD_SIZE_WEIGHTS)
        size = self.randomness.choices(sizes, weights=list(HOUSEHOLD_SIZE_WEIGHTS.values()))[0]
        address = self.address()
        home_phone = self.phone()
        first = self.person(
            language=language,
            birth_date=self._birth_date_aged(youngest=25, oldest=75),
            address=address,
            home_phone=home_phone,
        )
        members = [first]
        has_partner = False
        while len(members) < size:
            if not has_partner and self.randomness.random() < HOUSEHOLD_PARTNER_RATE:
                has_partner = True
                offset = timedelta(days=self.randomness.randint(-8 * 365, 8 * 365))
                birth_date = min(first.birth_date + offset, REFERENCE_DATE - timedelta(days=18 * 365))
            else:
                latest = min(45 * 365, (REFERENCE_DATE - first.birth_date).days)
                birth_date = first.birth_date + timedelta(days=self.randomness.randrange(18 * 365, latest))
            if birth_date in {member.birth_date for member in members}:
                continue
            sex = self.randomness.choice(("female", "male"))
            family = first.family
            if self.randomness.random() >= HOUSEHOLD_SAME_FAMILY_NAME_RATE:
                family = self.family_name(language=language)
            given = self.different_given_name(
                language=language, sex=sex, taken=(member.given for member in members)
            )
            member = self.person(
                language=language,
                sex=sex,
                given=given,
                family=family,
                birth_date=birth_date,
                address=address,
                home_phone=home_phone,
            )
            if age_in_years(member.birth_date) < _CHILD_WITHOUT_PHONE_AGE:
                member = dataclasses.replace(member, mobile_phone="")
            members.append(member)
        if self.randomness.random() < HOUSEHOLD_SHARED_EMAIL_RATE:
            family_email = first.email or self.email(given=first.given, family=first.family)
            members = [dataclasses.replace(member, email=family_email) for member in members]
        return members

    def same_name_cluster(self, *, size: int) -> list[Person]:
        """``size`` different women called Maria Garcia, no two with one birth date or one address."""
        given, family, sex, language_code = SAME_NAME
        language = LANGUAGE_BY_CODE[language_code]
        cluster: list[Person] = []
        while len(cluster) < size:
            person = self.person(language=language, sex=sex, given=given, family=family)
            if all(
                person.birth_date != other.birth_date and person.address != other.address for other in cluster
            ):
                cluster.append(person)
        return cluster
