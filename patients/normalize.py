"""Normalization of FHIR R4 JSON (plain dicts) at ingest, before matching and golden records.

Pure functions: no models, no database and no logging, because every value handled here is PHI.
A value that changes keeps its original through a FHIR primitive extension, so nothing is lost and a
data steward can always see what the source sent. Values that cannot be read are left as they are:
a guess would be worse than the original.
"""

import datetime
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from core.json_copy import json_copy
from governance.policies.labs import lab_observation_normalize
from governance.policies.medications import Ingredient, MedicationMatch, medication_concept_normalize
from governance.policies.terminology import (
    TerminologyMaps,
    UnmappedConcept,
    concept_has_standard_coding,
    concept_map,
    concept_unmapped,
)
from governance.policies.vital_signs import OUTCOME_NOT_A_VITAL_SIGN as VITAL_SIGN_NOT_A_VITAL_SIGN
from governance.policies.vital_signs import vital_sign_candidate, vital_sign_normalize

ORIGINAL_VALUE_URL = "https://concord.example.org/fhir/StructureDefinition/original-value"

PHONE_SYSTEMS = frozenset({"phone", "sms", "fax"})
ADMINISTRATIVE_GENDERS = ("male", "female", "other", "unknown")
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%m-%d-%Y", "%d.%m.%Y")
DATETIME_ELEMENTS = (
    "effectiveDateTime", "issued", "authoredOn", "recordedDate", "onsetDateTime", "abatementDateTime",
    "occurrenceDateTime", "performedDateTime",
)  # fmt: skip
PERIOD_ELEMENTS = ("period", "effectivePeriod", "performedPeriod")

# Letters are refused (apart from an extension marker): "N/A" or a note must never be read as a vanity number.
_PHONE_PATTERN = re.compile(
    r"^(?:tel:)?(?P<number>[+\d\s().\-/]+?)\s*(?:(?:x|ext\.?|extension|#)\s*\d+)?$", re.IGNORECASE | re.ASCII
)
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$")
_TRAILING_DIGITS = re.compile(r"[0-9\s]*[0-9]$")
_WORD_START = re.compile(r"(?:^|(?<=[\s'\u2019-]))(\w)")
_ORDINAL = re.compile(r"[0-9]+(?:st|nd|rd|th)")
_PARTIAL_DATE = re.compile(r"(?P<year>[0-9]{4})(?:-(?P<month>[0-9]{2})(?:-(?P<day>[0-9]{2}))?)?")
_FULL_DATETIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?)?"
    r"(?P<zone>Z|(?P<sign>[+-])(?P<zone_hour>[0-9]{2}):?(?P<zone_minute>[0-9]{2}))?"
)

NAME_SUFFIXES = {"jr": "Jr", "junior": "Jr", "sr": "Sr", "senior": "Sr", "ii": "II", "iii": "III", "iv": "IV"}
NAME_PREFIXES = {"mr": "Mr", "mrs": "Mrs", "ms": "Ms", "dr": "Dr", "miss": "Miss", "mx": "Mx", "prof": "Prof"}

# USPS Publication 28, appendix C1 (street suffixes), C2 (secondary unit designators) and directionals.
STREET_SUFFIXES = {
    "alley": "Aly", "avenue": "Ave", "av": "Ave", "boulevard": "Blvd", "bypass": "Byp", "causeway": "Cswy",
    "center": "Ctr", "circle": "Cir", "court": "Ct", "cove": "Cv", "crescent": "Cres", "crossing": "Xing",
    "drive": "Dr", "expressway": "Expy", "freeway": "Fwy", "heights": "Hts", "highway": "Hwy",
    "junction": "Jct", "lane": "Ln", "parkway": "Pkwy", "place": "Pl", "plaza": "Plz", "point": "Pt",
    "ridge": "Rdg", "road": "Rd", "route": "Rte", "square": "Sq", "street": "St", "str": "St",
    "terrace": "Ter", "trail": "Trl", "turnpike": "Tpke", "way": "Way",
}  # fmt: skip
STREET_SUFFIXES |= {abbreviation.lower(): abbreviation for abbreviation in STREET_SUFFIXES.values()}
UNIT_DESIGNATORS = {
    "apartment": "Apt", "apt": "Apt", "building": "Bldg", "bldg": "Bldg", "department": "Dept",
    "dept": "Dept", "floor": "Fl", "fl": "Fl", "lot": "Lot", "room": "Rm", "rm": "Rm", "space": "Spc",
    "spc": "Spc", "suite": "Ste", "ste": "Ste", "trailer": "Trlr", "trlr": "Trlr", "unit": "Unit",
}  # fmt: skip
DIRECTIONALS = {
    "north": "N", "south": "S", "east": "E", "west": "W",
    "northeast": "NE", "northwest": "NW", "southeast": "SE", "southwest": "SW",
}  # fmt: skip
DIRECTIONALS |= {abbreviation.lower(): abbreviation for abbreviation in DIRECTIONALS.values()}
_UPPER_ADDRESS_WORDS = frozenset({"ne", "nw", "se", "sw", "po", "pmb"})

US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC", "florida": "FL",
    "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA",
    "kansas": "KS", "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD",
    "massachusetts": "MA", "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO",
    "montana": "MT", "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH",
    "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "american samoa": "AS",
    "guam": "GU", "northern mariana islands": "MP", "puerto rico": "PR", "virgin islands": "VI",
    "u.s. virgin islands": "VI",
}  # fmt: skip
US_STATE_CODES = frozenset(US_STATES.values()) | {"AA", "AE", "AP"}
US_COUNTRY_NAMES = frozenset({"us", "usa", "united states", "united states of america"})

GENDER_WORDS = {
    "male": "male", "m": "male", "man": "male", "boy": "male",
    "female": "female", "f": "female", "woman": "female", "girl": "female",
    "other": "other", "o": "other", "a": "other", "ambiguous": "other", "non-binary": "other",
    "nonbinary": "other", "unknown": "unknown", "u": "unknown", "n": "unknown", "unk": "unknown",
}  # fmt: skip


@dataclass(frozen=True)
class NormalizedName:
    family: str
    given: tuple[str, ...]
    prefix: tuple[str, ...]
    suffix: tuple[str, ...]


@dataclass(frozen=True)
class NormalizedAddress:
    lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    country: str


def phone_to_e164(raw: str, *, region: str = "US") -> str | None:
    match = _PHONE_PATTERN.match(raw.strip())
    if match is None or not any(character.isdigit() for character in match["number"]):
        return None
    try:
        number = phonenumbers.parse(match["number"], region)
    except phonenumbers.NumberParseException:
        return None
    # Synthea's 555 numbers are possible but not valid; rejecting them would discard synthetic patients.
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_normalize(raw: str) -> str | None:
    candidate = raw.strip()
    if candidate.lower().startswith("mailto:"):
        candidate = candidate[len("mailto:") :].strip()
    # Local parts are case-sensitive in theory, but providers ignore case and matching needs a single form.
    candidate = candidate.lower()
    return candidate if _EMAIL_PATTERN.match(candidate) else None


def _whitespace_collapse(raw: str) -> str:
    return " ".join(raw.split())


def _upper_first(match: re.Match[str]) -> str:
    # "ß".upper() is "SS": keeping the letter keeps the result stable when normalized again.
    return match[1].upper() if len(match[1].upper()) == 1 else match[1]


def _case_fix(text: str) -> str:
    """Title-case text typed in one case; mixed case ("McDonald", "van der Berg") is deliberate and kept."""
    return _WORD_START.sub(_upper_first, text.lower()) if text.isupper() or text.islower() else text


def name_part_normalize(raw: str) -> str:
    text = _whitespace_collapse(raw)
    without_digits = _TRAILING_DIGITS.sub("", text).strip()
    # Synthea appends digits to names; a part made only of digits is kept, since it is not a Synthea artefact.
    return _case_fix(without_digits if any(character.isalpha() for character in without_digits) else text)


def _affix_key(raw: str) -> str:
    return raw.strip().rstrip(".,").lower()


def _affix_normalize(raw: str, table: dict[str, str]) -> str:
    return table.get(_affix_key(raw), _whitespace_collapse(raw))


def _name_string_split(raw: str) -> tuple[str, list[str]]:
    """Normalize a family or given string and take out the suffixes written at its end ("Smith Jr.")."""
    words = raw.split()
    suffixes: list[str] = []
    while len(words) >= 2 and _affix_key(words[-1]) in NAME_SUFFIXES:
        suffixes.insert(0, NAME_SUFFIXES[_affix_key(words.pop())])
    return name_part_normalize(" ".join(words).rstrip(", ")), suffixes


def person_name_normalize(
    *,
    family: str | None,
    given: list[str] | None,
    prefix: list[str] | None = None,
    suffix: list[str] | None = None,
) -> NormalizedName:
    family_value, moved = _name_string_split(family or "")
    given_values: list[str] = []
    for part in given or []:
        value, found = _name_string_split(part)
        if value:
            given_values.append(value)
        moved.extend(found)
    suffixes = [_affix_normalize(part, NAME_SUFFIXES) for part in suffix or [] if part.strip()]
    suffixes.extend(found for found in dict.fromkeys(moved) if found not in suffixes)
    return NormalizedName(
        family=family_value,
        given=tuple(given_values),
        prefix=tuple(_affix_normalize(part, NAME_PREFIXES) for part in prefix or [] if part.strip()),
        suffix=tuple(suffixes),
    )


def _state_code(raw: str) -> str | None:
    key = _whitespace_collapse(raw).lower()
    if key in US_STATES:
        return US_STATES[key]
    code = key.replace(".", "").upper()
    return code if code in US_STATE_CODES else None


def _country_is_us(raw: str) -> bool:
    return _whitespace_collapse(raw).replace(".", "").lower() in US_COUNTRY_NAMES


def _address_is_us(*, state: str | None, country: str | None) -> bool:
    if country and country.strip():
        return _country_is_us(country)
    # Without a country, a US state is the only safe evidence; anything else gets whitespace cleanup only.
    return bool(state) and _state_code(state or "") is not None


def _address_word_case(word: str) -> str:
    key = word.lower()
    if key in _UPPER_ADDRESS_WORDS:
        return word.upper()
    if any(character.isdigit() for character in word):
        return key if _ORDINAL.fullmatch(key) else word.upper()
    return _case_fix(word)


def _is_name_word(word: str) -> bool:
    key = word.lower()
    return key not in DIRECTIONALS and key not in STREET_SUFFIXES


def _us_address_line_normalize(raw: str) -> str:
    # Publication 28 drops punctuation; a period between digits is a decimal point and stays.
    words = re.sub(r"(?<![0-9])\.|\.(?![0-9])", "", raw).replace(",", " ").split()
    unit_at = next(
        (
            index
            for index, word in enumerate(words)
            if word.startswith("#") or (word.lower() in UNIT_DESIGNATORS and index + 1 < len(words))
        ),
        len(words),
    )
    street, unit = words[:unit_at], words[unit_at:]
    result = [_address_word_case(word) for word in street]
    start = 1 if street and street[0][0].isdigit() else 0
    end = len(street)
    name = street[start:]
    # A directional or suffix is abbreviated only when a street name remains ("North Street" stays).
    if len(name) >= 2 and name[0].lower() in DIRECTIONALS and any(map(_is_name_word, name[1:])):
        result[start] = DIRECTIONALS[name[0].lower()]
    if name[-1:] and name[-1].lower() in DIRECTIONALS and (len(name) >= 3 or _is_name_word(name[0])):
        result[-1] = DIRECTIONALS[name[-1].lower()]
        end -= 1
    if end - 1 > start and street[end - 1].lower() in STREET_SUFFIXES:
        result[end - 1] = STREET_SUFFIXES[street[end - 1].lower()]
    if unit:
        designator = UNIT_DESIGNATORS.get(unit[0].lower(), unit[0])
        result.extend([designator, *(_address_word_case(word) for word in unit[1:])])
    return " ".join(result)


def _postal_code_normalize(raw: str) -> str:
    compact = re.sub(r"[\s-]", "", raw)
    if not compact.isascii() or not compact.isdigit():
        return _whitespace_collapse(raw)
    # Spreadsheets drop leading zeros (New England, Puerto Rico); a short US ZIP can only mean that.
    if len(compact) in (3, 4):
        return compact.zfill(5)
    if len(compact) in (7, 8, 9):
        compact = compact.zfill(9)
        return f"{compact[:5]}-{compact[5:]}"
    return _whitespace_collapse(raw)


def address_normalize(
    *,
    lines: list[str] | None,
    city: str | None,
    state: str | None,
    postal_code: str | None,
    country: str | None = None,
) -> NormalizedAddress:
    if not _address_is_us(state=state, country=country):
        return NormalizedAddress(
            lines=tuple(line for line in map(_whitespace_collapse, lines or []) if line),
            city=_whitespace_collapse(city or ""),
            state=_whitespace_collapse(state or ""),
            postal_code=_whitespace_collapse(postal_code or ""),
            country=_whitespace_collapse(country or ""),
        )
    return NormalizedAddress(
        lines=tuple(line for line in map(_us_address_line_normalize, lines or []) if line),
        city=_case_fix(_whitespace_collapse(city or "")),
        state=_state_code(state or "") or _whitespace_collapse(state or ""),
        postal_code=_postal_code_normalize(postal_code or ""),
        # A missing country stays missing: the state made the rules apply, it does not fill in data.
        country="US" if country and country.strip() else "",
    )


def administrative_sex_normalize(raw: str | None) -> str:
    return GENDER_WORDS.get(_whitespace_collapse(raw or "").lower(), "unknown")


def _value_shape(text: str) -> str:
    return re.sub(r"[^\W\d_]", "A", re.sub(r"\d", "9", text))[:40]


def date_parse(raw: str, *, formats: list[str] | None = None) -> datetime.date:
    text = raw.strip()
    accepted = formats or list(DATE_FORMATS)
    for date_format in accepted:
        try:
            return datetime.datetime.strptime(text, date_format).date()  # noqa: DTZ007 - a date has no zone
        except ValueError:
            continue
    readable = ", ".join(
        date_format.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD") for date_format in accepted
    )
    # The shape, not the value, goes in the message: messages end up in logs, and birth dates are PHI.
    raise ValueError(f"date shaped {_value_shape(text)!r} matches none of the accepted formats: {readable}")


def datetime_to_utc(raw: str, *, default_timezone: str = "UTC") -> tuple[str, bool]:
    text = raw.strip()
    partial = _PARTIAL_DATE.fullmatch(text)
    if partial is not None:
        # Validates the month and day; FHIR allows partial dates and they carry no time zone to convert.
        datetime.date(int(partial["year"]), int(partial["month"] or 1), int(partial["day"] or 1))
        return text, text != raw
    match = _FULL_DATETIME.fullmatch(text)
    if match is None:
        raise ValueError(f"datetime shaped {_value_shape(text)!r} is not a FHIR dateTime")
    zone: datetime.tzinfo
    if match["zone"] == "Z":
        zone = datetime.UTC
    elif match["zone"]:
        minutes = int(match["zone_hour"]) * 60 + int(match["zone_minute"])
        zone = datetime.timezone(datetime.timedelta(minutes=-minutes if match["sign"] == "-" else minutes))
    else:
        zone = ZoneInfo(default_timezone)
    time = datetime.time(int(match["hour"]), int(match["minute"]), int(match["second"] or 0))
    moment = datetime.datetime.combine(datetime.date.fromisoformat(match["date"]), time, tzinfo=zone)
    try:
        utc = moment.astimezone(datetime.UTC)
    except OverflowError as error:
        raise ValueError("datetime falls outside the years 1 to 9999 once converted to UTC") from error
    # The fraction is copied as sent: whole-minute offsets never change it, and FHIR allows any precision.
    normalized = f"{utc.replace(tzinfo=None).isoformat(timespec='seconds')}{match['fraction'] or ''}Z"
    return normalized, normalized != raw


def _with_original(element: object, raw: str) -> dict[str, Any]:
    result = dict(element) if isinstance(element, dict) else {}
    # An empty original is not a valid FHIR string, and there is nothing in it to keep.
    if raw:
        result["extension"] = [*result.get("extension", []), {"url": ORIGINAL_VALUE_URL, "valueString": raw}]
    return result


def _scalar_replace(container: dict[str, Any], key: str, value: str) -> None:
    original = container[key]
    if value == original or not value:
        return
    container[key] = value
    container[f"_{key}"] = _with_original(container.get(f"_{key}"), original)


def _list_replace(container: dict[str, Any], key: str, values: list[str]) -> None:
    originals = container[key]
    elements = container.get(f"_{key}", [None] * len(originals))
    # A misaligned "_key" cannot say which original belongs where, so the list is left as sent.
    if values == originals or not isinstance(elements, list) or len(elements) != len(originals):
        return
    container[key] = [value or original for value, original in zip(values, originals, strict=True)]
    container[f"_{key}"] = [
        element if value in ("", original) else _with_original(element, original)
        for value, original, element in zip(values, originals, elements, strict=True)
    ]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: object) -> list[str] | None:
    return value if isinstance(value, list) and all(isinstance(item, str) for item in value) else None


def _human_name_normalize(name: dict[str, Any]) -> None:
    given, prefix, suffix = (_texts(name.get(key, [])) for key in ("given", "prefix", "suffix"))
    if given is None or prefix is None or suffix is None:
        return
    moved: list[str] = []
    family = _text(name.get("family"))
    if family is not None:
        value, found = _name_string_split(family)
        _scalar_replace(name, "family", value)
        moved.extend(found)
    given_values = []
    for part in given:
        value, found = _name_string_split(part)
        given_values.append(value)
        moved.extend(found)
    if given:
        _list_replace(name, "given", given_values)
    if prefix:
        _list_replace(name, "prefix", [_affix_normalize(part, NAME_PREFIXES) for part in prefix])
    if suffix:
        _list_replace(name, "suffix", [_affix_normalize(part, NAME_SUFFIXES) for part in suffix])
    # The suffix taken out of "Smith Jr." has no original of its own: "_family" keeps the whole string.
    for moved_suffix in dict.fromkeys(moved):
        if moved_suffix not in name.get("suffix", []):
            name["suffix"] = [*name.get("suffix", []), moved_suffix]
            if isinstance(name.get("_suffix"), list):
                name["_suffix"].append(None)


def _telecom_normalize(point: dict[str, Any]) -> None:
    value, system = _text(point.get("value")), point.get("system")
    normalized = None
    if value is not None and system in PHONE_SYSTEMS:
        normalized = phone_to_e164(value)
    elif value is not None and system == "email":
        normalized = email_normalize(value)
    # An unreadable value stays as sent: dropping it would lose data, and a guess would be worse.
    if normalized is not None:
        _scalar_replace(point, "value", normalized)


def _address_element_normalize(address: dict[str, Any]) -> None:
    lines = _texts(address.get("line", []))
    state, country = _text(address.get("state")), _text(address.get("country"))
    normalized = address_normalize(
        lines=None,
        city=_text(address.get("city")),
        state=state,
        postal_code=_text(address.get("postalCode")),
        country=country,
    )
    fields = (normalized.city, normalized.state, normalized.postal_code, normalized.country)
    for key, value in zip(("city", "state", "postalCode", "country"), fields, strict=True):
        if _text(address.get(key)) is not None:
            _scalar_replace(address, key, value)
    if lines:
        us_address = _address_is_us(state=state, country=country)
        line_normalize = _us_address_line_normalize if us_address else _whitespace_collapse
        _list_replace(address, "line", [line_normalize(line) for line in lines])


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _datetime_element_normalize(container: dict[str, Any], key: str, *, default_timezone: str) -> None:
    value = _text(container.get(key))
    if value is None:
        return
    try:
        normalized, _ = datetime_to_utc(value, default_timezone=default_timezone)
    except ValueError:
        # Left for FHIR validation to report: an unreadable datetime is not this module's to repair.
        return
    _scalar_replace(container, key, normalized)


def patient_resource_normalize(resource: dict[str, Any], *, default_timezone: str = "UTC") -> dict[str, Any]:
    """Return a normalized copy of a FHIR R4 Patient; default_timezone is for its datetimes, if any."""
    result = json_copy(resource)
    for name in _dicts(result.get("name")):
        _human_name_normalize(name)
    for point in _dicts(result.get("telecom")):
        _telecom_normalize(point)
    for address in _dicts(result.get("address")):
        _address_element_normalize(address)
    gender = _text(result.get("gender"))
    if gender is not None:
        _scalar_replace(result, "gender", administrative_sex_normalize(gender))
    _datetime_element_normalize(result, "deceasedDateTime", default_timezone=default_timezone)
    return result


def resource_datetimes_normalize(
    resource: dict[str, Any], *, default_timezone: str = "UTC"
) -> dict[str, Any]:
    # Copy only what changes (the top level and the periods): ingest calls this for every resource.
    result = dict(resource)
    for key in DATETIME_ELEMENTS:
        if key in result:
            _datetime_element_normalize(result, key, default_timezone=default_timezone)
    for key in PERIOD_ELEMENTS:
        period = result.get(key)
        if isinstance(period, dict):
            result[key] = period = dict(period)
            for bound in ("start", "end"):
                _datetime_element_normalize(period, bound, default_timezone=default_timezone)
    return result


# Terminology: which CodeableConcept of each resource type names what it is about.
MEDICATION_RESOURCE_TYPES = frozenset(
    {"MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense"}
)
CODED_ELEMENTS = {
    "Observation": "code",
    "Condition": "code",
    "Procedure": "code",
    "AllergyIntolerance": "code",
    "DiagnosticReport": "code",
    "Immunization": "vaccineCode",
    "Medication": "code",
    **dict.fromkeys(MEDICATION_RESOURCE_TYPES, "medicationCodeableConcept"),
}


@dataclass
class TerminologyFindings:
    """What terminology normalization found in one resource; no values, so it is safe to count and log."""

    unmapped: list[UnmappedConcept] = field(default_factory=list)
    vital_sign: str = ""  # the vital-sign policy's outcome, for Observations
    lab: str = ""  # the lab policy's outcome, for Observations that are not vital signs
    is_medication: bool = False
    medication: MedicationMatch | None = None
    medication_reference_only: bool = False  # names a Medication outside the resource: resolved there


def _quantity_core(quantity: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in quantity.items() if key != "extension"}


def _quantity_keep_original(converted: object, original: object) -> object:
    """The converted quantity with the source's quantity kept in an original-value extension."""
    if not isinstance(converted, dict) or not isinstance(original, dict):
        return converted
    if _quantity_core(converted) == _quantity_core(original):
        return converted
    if any(item.get("url") == ORIGINAL_VALUE_URL for item in converted.get("extension") or []):
        return converted
    extension = {"url": ORIGINAL_VALUE_URL, "valueQuantity": _quantity_core(original)}
    return {**converted, "extension": [*(converted.get("extension") or []), extension]}


def _vital_sign_apply(observation: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if not vital_sign_candidate(observation):
        return observation, VITAL_SIGN_NOT_A_VITAL_SIGN
    result, outcome = vital_sign_normalize(observation)
    if result == observation:
        return observation, outcome  # the policy always copies: an unchanged one spares copies downstream
    if "valueQuantity" in result:
        result["valueQuantity"] = _quantity_keep_original(
            result["valueQuantity"], observation.get("valueQuantity")
        )
    originals = observation.get("component") or []
    for index, component in enumerate(result.get("component") or []):
        if index < len(originals) and isinstance(originals[index], dict) and "valueQuantity" in component:
            component["valueQuantity"] = _quantity_keep_original(
                component["valueQuantity"], originals[index].get("valueQuantity")
            )
    return result, outcome


def _observation_terminology_normalize(
    observation: dict[str, Any], *, maps: TerminologyMaps, source_slug: str, findings: TerminologyFindings
) -> dict[str, Any]:
    components = observation.get("component")
    if isinstance(components, list) and components:
        mapped = [
            {**item, "code": concept_map(item["code"], maps=maps, source_slug=source_slug)}
            if isinstance(item, dict) and isinstance(item.get("code"), dict)
            else item
            for item in components
        ]
        if any(new is not old for new, old in zip(mapped, components, strict=True)):
            observation = {**observation, "component": mapped}
    observation, findings.vital_sign = _vital_sign_apply(observation)
    if findings.vital_sign == VITAL_SIGN_NOT_A_VITAL_SIGN:
        findings.vital_sign = ""
        observation, findings.lab = lab_observation_normalize(observation)
    return observation


def _medication_concept(
    concept: object, *, findings: TerminologyFindings
) -> tuple[dict[str, Any] | None, MedicationMatch | None]:
    if not isinstance(concept, dict):
        return None, None
    normalized, match = medication_concept_normalize(concept)
    if match is None:
        findings.unmapped.extend(concept_unmapped(concept, include_standard=True))
    return normalized, match


def _contained_medication_normalize(
    resource: dict[str, Any], *, maps: TerminologyMaps, source_slug: str, findings: TerminologyFindings
) -> dict[str, Any]:
    """A MedicationRequest (or similar) naming a contained Medication: the contained one gains the coding."""
    reference = (resource.get("medicationReference") or {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("#"):
        findings.medication_reference_only = isinstance(reference, str)
        return resource
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return resource
    for index, item in enumerate(contained):
        if (
            isinstance(item, dict)
            and item.get("resourceType") == "Medication"
            and item.get("id") == reference[1:]
        ):
            normalized = _medication_resource_normalize(
                item, maps=maps, source_slug=source_slug, findings=findings
            )
            if normalized is item:
                return resource
            replaced = list(contained)
            replaced[index] = normalized
            return {**resource, "contained": replaced}
    return resource


def _medication_resource_normalize(
    medication: dict[str, Any], *, maps: TerminologyMaps, source_slug: str, findings: TerminologyFindings
) -> dict[str, Any]:
    """A Medication: its code, or without one its ingredients' item concepts, gain ingredient codings."""
    concept = medication.get("code")
    if isinstance(concept, dict):
        concept = concept_map(concept, maps=maps, source_slug=source_slug)
        normalized, findings.medication = _medication_concept(concept, findings=findings)
        return medication if normalized is medication.get("code") else {**medication, "code": normalized}
    items = medication.get("ingredient")
    if not isinstance(items, list):
        return medication
    ingredients: list[Ingredient] = []
    item_findings = TerminologyFindings()
    replaced = []
    for item in items:
        item_concept = item.get("itemCodeableConcept") if isinstance(item, dict) else None
        if not isinstance(item_concept, dict):
            replaced.append(item)
            continue
        item_concept = concept_map(item_concept, maps=maps, source_slug=source_slug)
        normalized, match = _medication_concept(item_concept, findings=item_findings)
        if match is not None:
            ingredients.extend(
                ingredient for ingredient in match.ingredients if ingredient not in ingredients
            )
        replaced.append({**item, "itemCodeableConcept": normalized})
    findings.unmapped.extend(item_findings.unmapped)
    # The product is known when each of its ingredients is; one unreadable ingredient leaves it unresolved.
    if ingredients and not item_findings.unmapped:
        findings.medication = MedicationMatch(
            ingredients=tuple(ingredients), method="ingredients", confidence=1.0
        )
    if replaced == items:
        return medication
    return {**medication, "ingredient": replaced}


def resource_terminology_normalize(
    resource: dict[str, Any], *, maps: TerminologyMaps, source_slug: str = ""
) -> tuple[dict[str, Any], TerminologyFindings]:
    """Standard codes for one FHIR R4 resource, added next to the source's own; and what was found.

    Local codes and free-text names become standard codings through the terminology maps (extra codings:
    the source's codings and text stay as sent). Vital signs end with LOINC and UCUM (free-text blood
    pressure becomes a coded panel), labs in each analyte's canonical UCUM unit with their flags as sent,
    medications gain ingredient-level RxNorm codings. A converted quantity keeps the source's quantity in an
    original-value extension. Concepts left without a standard code are listed in the findings, for the
    unmapped-code queue. Normalizing a normalized resource changes nothing.
    """
    resource_type = resource.get("resourceType")
    findings = TerminologyFindings()
    element = CODED_ELEMENTS.get(resource_type) if isinstance(resource_type, str) else None
    if element is None:
        return resource, findings
    result = dict(resource)
    concept = result.get(element)
    if isinstance(concept, dict):
        result[element] = concept = concept_map(concept, maps=maps, source_slug=source_slug)
    if resource_type == "Observation":
        result = _observation_terminology_normalize(
            result, maps=maps, source_slug=source_slug, findings=findings
        )
    if resource_type == "Medication":
        findings.is_medication = True
        return _medication_resource_normalize(
            resource, maps=maps, source_slug=source_slug, findings=findings
        ), findings
    if resource_type in MEDICATION_RESOURCE_TYPES:
        findings.is_medication = True
        if isinstance(concept, dict):
            normalized, findings.medication = _medication_concept(concept, findings=findings)
            if normalized is not None:
                result[element] = normalized
        else:
            result = _contained_medication_normalize(
                result, maps=maps, source_slug=source_slug, findings=findings
            )
        return result, findings
    if not concept_has_standard_coding(result.get(element)):
        findings.unmapped.extend(concept_unmapped(result.get(element)))
    return result, findings
