"""What matching compares: flat, cleaned features of a normalized FHIR Patient, and its blocking keys.

Features are computed once, when a record is stored, and kept on the record (``SourcePatient.match_features``)
so that online scoring, bulk re-linking (Splink) and training all read exactly the same values.
Every feature is a plain string or a sorted list of strings ("" and [] mean unknown).
"""

import csv
import functools
import re
import unicodedata
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import jellyfish

JSON = dict[str, Any]
Features = dict[str, Any]

FEATURES_VERSION = 4
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
# The identifier a CSV import gives each row (its record id in the source): the key of the record, not a
# registration number of the person, so two rows of one export with different ids may still be one person.
SOURCE_RECORD_SYSTEM_PREFIX = "urn:concord:source:"
_STREET_NUMBER = re.compile(r"\s*(\d+[a-z]?)\b")

_NON_LETTERS = re.compile(r"[^a-z]+")
# An apostrophe joins a name (O'Brien, D'Andre): splitting there would make "o" a name part.
_APOSTROPHES = re.compile(r"['\u2018\u2019`]")
# Particles say nothing about a family: "de la Cruz" and "de Jesus", "Van Dyke" and "Van Buren" share none.
_FAMILY_PARTICLES = frozenset(
    {"al", "bin", "da", "das", "de", "del", "della", "der", "di", "do", "dos", "du", "el", "la", "las", "le"}
    | {"los", "san", "st", "ten", "ter", "van", "von", "y"}
)
_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")
_SUFFIXES = {"jr": "jr", "junior": "jr", "sr": "sr", "senior": "sr", "ii": "ii", "iii": "iii", "iv": "iv"}

# Identities that say "we do not know who this is": they must never be linked automatically.
_PLACEHOLDER_GIVEN = {"unknown", "unk", "baby", "babyboy", "babygirl", "test", "patient", "anonymous", "doe"}
_PLACEHOLDER_FAMILY = {"doe", "unknown", "unk", "test", "testpatient", "patient", "anonymous", "zzz"}
_PLACEHOLDER_FULL = {("john", "doe"), ("jane", "doe"), ("baby", "boy"), ("baby", "girl"), ("test", "test")}
_PLACEHOLDER_BIRTH_DATES = {"1900-01-01", "1800-01-01", "1901-01-01", "0001-01-01"}


def ascii_fold(text: str) -> str:
    """Lower case without diacritics: José and JOSE compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(character for character in decomposed if not unicodedata.combining(character)).lower()


def _name_key(text: str) -> str:
    return _NON_LETTERS.sub("", ascii_fold(text))


def _name_tokens(text: str) -> list[str]:
    return [token for token in _NON_LETTERS.split(_APOSTROPHES.sub("", ascii_fold(text))) if token]


@functools.cache
def _formal_names() -> dict[str, frozenset[str]]:
    """Given name -> the formal names it stands for (a formal name stands for itself)."""
    path = Path(__file__).with_name("data") / "nicknames.csv"
    formal: dict[str, set[str]] = defaultdict(set)
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name, nickname = row["name"].strip(), row["nickname"].strip()
            formal[name].add(name)
            formal[nickname].add(name)
    return {name: frozenset(names) for name, names in formal.items()}


def given_name_groups(given: str) -> list[str]:
    """The formal names a given name may stand for; two names sharing one are nickname-equivalent."""
    key = _name_key(given)
    if not key:
        return []
    return sorted(_formal_names().get(key, frozenset({key})))


def phonetic(text: str) -> str:
    """A phonetic code (NYSIIS) that survives most one-letter typos and spelling variants."""
    key = _name_key(text)
    return jellyfish.nysiis(key) if key else ""


def given_phonetic(given_names: str) -> str:
    """The phonetic code of the first of a golden patient's given names, as patient search looks it up
    (the first name typed is compared with the first given name)."""
    return phonetic(given_names.split(" ")[0] if given_names else "")[:40]


def _preferred(items: Any, *, preferred: tuple[str, ...]) -> JSON | None:
    candidates = [item for item in items or [] if isinstance(item, dict)]
    for wanted in preferred:
        for item in candidates:
            if item.get("use") == wanted:
                return item
    current = [item for item in candidates if item.get("use") != "old"] or candidates
    return current[0] if current else None


def _birth_date(resource: JSON) -> str:
    value = resource.get("birthDate")
    if not isinstance(value, str) or len(value) != 10:
        return ""
    try:
        date.fromisoformat(value)
    except ValueError:
        return ""
    return value


def day_month_sorted(birth_date: str) -> str:
    """The birth date with day and month in ascending order, so 1980-03-07 and 1980-07-03 agree."""
    if not birth_date:
        return ""
    year, month, day = birth_date.split("-")
    low, high = sorted((month, day))
    return f"{year}-{low}-{high}"


def _digits(text: str) -> str:
    return "".join(character for character in text if character.isdigit())


def patient_features(resource: JSON) -> Features:
    """The matching features of one normalized FHIR Patient resource."""
    name = _preferred(resource.get("name"), preferred=("official", "usual")) or {}
    given_parts = [str(part) for part in name.get("given") or [] if part]
    given_tokens = [token for part in given_parts for token in _name_tokens(part)]
    family_raw = str(name.get("family") or "")
    family_tokens = _name_tokens(family_raw)
    suffixes = [_SUFFIXES.get(_name_key(str(part)), "") for part in name.get("suffix") or []]
    telecom = [item for item in resource.get("telecom") or [] if isinstance(item, dict)]
    phones = sorted(
        {
            str(point["value"])
            for point in telecom
            if point.get("system") in {"phone", "sms"}
            and isinstance(point.get("value"), str)
            and point["value"].startswith("+")
        }
    )
    mobile_phones = sorted(
        {
            str(point["value"])
            for point in telecom
            if (
                point.get("system") == "sms"
                or (point.get("system") == "phone" and point.get("use") == "mobile")
            )
            and isinstance(point.get("value"), str)
            and point["value"].startswith("+")
        }
    )
    emails = sorted(
        {
            str(point["value"]).lower()
            for point in telecom
            if point.get("system") == "email"
            and isinstance(point.get("value"), str)
            and "@" in point["value"]
        }
    )
    address = _preferred(resource.get("address"), preferred=("home",)) or {}
    lines = [str(line) for line in address.get("line") or [] if line]
    identifiers: list[str] = []
    ssn = ""
    for identifier in resource.get("identifier") or []:
        if not isinstance(identifier, dict) or not identifier.get("value"):
            continue
        system, value = str(identifier.get("system") or ""), str(identifier["value"]).strip()
        if system == SSN_SYSTEM:
            ssn = _digits(value)
        elif system and identifier.get("use") != "old" and not system.startswith(SOURCE_RECORD_SYSTEM_PREFIX):
            identifiers.append(f"{system}|{value.upper()}")
    given = given_tokens[0] if given_tokens else ""
    family = "".join(family_tokens)
    birth_date = _birth_date(resource)
    gender = str(resource.get("gender") or "")
    features: Features = {
        "given": given,
        "given_groups": given_name_groups(given),
        "given_others": given_tokens[1:],
        "family": family,
        "family_tokens": [
            token for token in family_tokens if len(token) > 1 and token not in _FAMILY_PARTICLES
        ],
        "suffix": next((suffix for suffix in suffixes if suffix), ""),
        "birth_date": birth_date,
        "birth_date_sorted": day_month_sorted(birth_date),
        "sex": gender if gender in {"male", "female"} else "",
        "phones": phones,
        "mobile_phones": mobile_phones,
        "emails": emails,
        "street": " ".join(_NON_ALPHANUMERIC.sub(" ", ascii_fold(lines[0])).split()) if lines else "",
        "city": _name_key(str(address.get("city") or "")),
        "postal_code": _digits(str(address.get("postalCode") or ""))[:5],
        "identifiers": sorted(set(identifiers)),
        "identifier_systems": sorted({identifier.partition("|")[0] for identifier in identifiers}),
        "ssn": ssn if len(ssn) == 9 else "",
    }
    features["placeholder"] = is_placeholder(features)
    return features


def is_placeholder(features: Features) -> bool:
    """John Doe, Baby Girl, Unknown, test patients, 1900-01-01: identities that must not link automatically."""
    given, family = features["given"], features["family"]
    return (
        (given, family) in _PLACEHOLDER_FULL
        or given in _PLACEHOLDER_GIVEN
        or family in _PLACEHOLDER_FAMILY
        or (not given and not family)
        or features["birth_date"] in _PLACEHOLDER_BIRTH_DATES
    )


def blocking_keys(features: Features) -> list[str]:
    """Index keys under which a record is found as a candidate; two records sharing one key are compared.

    Each key is narrow enough that a common value (a popular surname, a shared birth date) does not flood
    the candidate list, and the set is broad enough that any single corrupted field still leaves a key.
    """
    keys: set[str] = set()
    given_code = phonetic(features["given"])
    family_code = phonetic(features["family"])
    birth_date = features["birth_date"]
    if family_code and given_code:
        keys.add(f"n:{family_code}:{given_code}")  # names agree, birth date may be wrong
    if birth_date:
        sorted_date = features["birth_date_sorted"]
        if family_code:
            keys.add(f"df:{sorted_date}:{family_code}")  # given name differs (nickname, typo)
        for group in features["given_groups"][:3]:
            keys.add(f"dg:{sorted_date}:{group}")  # family name changed (marriage)
        if given_code:
            keys.add(f"dg:{sorted_date}:{given_code}")
        if family_code[:1]:
            keys.add(f"dy:{birth_date[5:]}:{family_code[:3]}:{features['given'][:1]}")  # year digits wrong
    for phone in features["phones"]:
        keys.add(f"p:{phone}")
    for email in features["emails"]:
        keys.add(f"e:{email}")
    postal_code = features["postal_code"]
    if postal_code and features["given"]:
        keys.add(f"z:{postal_code}:{features['given'][:1]}:{family_code[:1]}")
    # Both names mistyped (FEBRL's corruptions, a transcribed form): the birth date and where they live
    # still say who it may be.
    if birth_date:
        keys.add(f"dz:{birth_date}:{postal_code[:1]}")  # birth date within a postal region
        if postal_code:
            keys.add(f"zm:{postal_code}:{birth_date[5:]}")  # birth year wrong too
    street_number = _STREET_NUMBER.match(features["street"] or "")
    if postal_code and street_number:
        keys.add(f"a:{postal_code}:{street_number.group(1)}")  # the same house, names and birth date wrong
    for identifier in features["identifiers"]:
        keys.add(f"i:{identifier}")
    if features["ssn"]:
        keys.add(f"s:{features['ssn']}")
    return sorted(key[:200] for key in keys)
