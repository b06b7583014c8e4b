"""The truth about synthetic people: who they are, before any source system records them."""

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from faker import Faker

from patients.synthetic.names import COMMON_NAMES, FORMAL_NAMES, nicknames_for, without_diacritics

# The "today" of the synthetic world. Fixed, so that output does not change with the calendar.
REFERENCE_DATE = date(2025, 6, 30)

# Area codes of the region the hub serves, so that phone numbers look local.
_AREA_CODES = ("617", "857", "508", "774", "781", "339", "978", "351", "413", "603", "401", "860")
_STATES = ("MA", "NH", "RI", "CT", "ME", "VT", "NY")
_STATE_WEIGHTS = (80, 5, 5, 4, 2, 2, 2)
# Reserved for documentation (RFC 2606), so no generated address can reach a real mailbox.
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


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


@dataclass(frozen=True)
class HardNegative:
    """Two different people who look alike and must never be merged."""

    kind: str  # "twins" or "common_name"
    person_ids: tuple[str, str]


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

    def twin(self, sibling: Person) -> Person:
        """Same family name, birth date, address and home phone; a given name that is not a variant."""
        language = LANGUAGE_BY_CODE[sibling.preferred_language]
        sex = self.randomness.choice(("female", "male"))
        taken = {sibling.given, *nicknames_for(sibling.given)}
        given = self.given_name(language=language, sex=sex)
        while given in taken or sibling.given in nicknames_for(given):
            given = self.given_name(language=language, sex=sex)
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


def hard_negative_pair_count(*, people: int) -> int:
    """How many twin pairs, and separately how many common-name pairs, a population gets (2% each)."""
    if people < 8:
        return 0
    return max(1, people // 50)
