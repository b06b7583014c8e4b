"""The FHIR read API's search parameters: what each resource type answers to (the CapabilityStatement is
generated from these tables), and the parsing of a query string into criteria, paging and sorting.

Pure: no database access. ``patients.api.fhir_search`` turns parsed criteria into scoped queries.
"""

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from django.core import signing

from patients.fhir import is_resource_type
from patients.ingest.codings import ALLERGY_CATEGORY_SYSTEM
from patients.matching.features import ascii_fold

SEARCHABLE_TYPES = (
    "Observation",
    "Condition",
    "MedicationRequest",
    "Encounter",
    "AllergyIntolerance",
    "Immunization",
)

DEFAULT_COUNT = 50

MAX_COUNT = 500

_CURSOR_SALT = "concord.fhir.page"


class SearchError(Exception):
    """The request cannot be answered as asked; ``parameter`` names the culprit (an OperationOutcome expression)."""

    def __init__(self, message: str, *, parameter: str = "", code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.code = code


@dataclass(frozen=True)
class SearchParameter:
    name: str
    type: str  # the FHIR search parameter type: string, token, date, reference
    documentation: str
    definition: str = ""  # the standard SearchParameter, only where the meaning is exactly the standard one
    kind: str = ""  # how it is answered, when that differs from the name (aliases)


_STANDARD = "http://hl7.org/fhir/SearchParameter/"

PATIENT_PARAMETERS: tuple[SearchParameter, ...] = (
    SearchParameter(
        "name",
        "string",
        "The golden family name or a given name starts with the value (at a word start); case and diacritics "
        "are ignored.",
        f"{_STANDARD}Patient-name",
    ),
    SearchParameter(
        "family",
        "string",
        "The golden family name starts with the value (at a word start); case and diacritics are ignored.",
        f"{_STANDARD}individual-family",
    ),
    SearchParameter(
        "given",
        "string",
        "A golden given name starts with the value; case and diacritics are ignored.",
        f"{_STANDARD}individual-given",
    ),
    SearchParameter(
        "birthdate",
        "date",
        "The golden birth date; prefixes eq, ne, gt, lt, ge, le, sa, eb; a partial date (1961, 1961-04) "
        "stands for the whole period.",
        f"{_STANDARD}individual-birthdate",
    ),
    SearchParameter(
        "gender",
        "token",
        "The golden administrative gender (male, female, other, unknown).",
        f"{_STANDARD}individual-gender",
    ),
    SearchParameter(
        "identifier",
        "token",
        "An identifier of any source record linked to the patient: system|value, |value (no system), system| "
        "(any value of that system) or value (any system).",
        f"{_STANDARD}Patient-identifier",
    ),
    SearchParameter(
        "phone",
        "token",
        "A phone number of the golden record or of any linked source record, written in any format "
        "(compared in E.164, US numbers by default).",
        f"{_STANDARD}individual-phone",
    ),
    SearchParameter(
        "email",
        "token",
        "An e-mail address of the golden record or of any linked source record (case ignored).",
        f"{_STANDARD}individual-email",
    ),
)

_PATIENT_REFERENCE = SearchParameter(
    "patient",
    "reference",
    "The golden patient (Patient/<id> or <id>); a merged-away id finds the survivor's resources.",
)

_DATE_DOCUMENTATION = {
    "Observation": "effective[x] (the start of a period)",
    "Condition": "onset[x] when it is a dateTime or period, else recordedDate",
    "MedicationRequest": "authoredOn",
    "Encounter": "the start of period",
    "AllergyIntolerance": "onset[x] when it is a dateTime or period, else recordedDate",
    "Immunization": "occurrenceDateTime, else recorded",
}

_CODE_DOCUMENTATION = {
    "Observation": "Observation.code",
    "Condition": "Condition.code",
    "MedicationRequest": "medicationCodeableConcept, or the code and ingredients of a contained Medication",
    "Encounter": "Encounter.type",
    "AllergyIntolerance": "AllergyIntolerance.code and reaction.substance",
    "Immunization": "Immunization.vaccineCode",
}

_CATEGORY_DOCUMENTATION = {
    "Observation": "Observation.category",
    "Condition": "Condition.category",
    "MedicationRequest": "MedicationRequest.category",
    "AllergyIntolerance": f"AllergyIntolerance.category (system {ALLERGY_CATEGORY_SYSTEM})",
}

_ALIASES = {"Encounter": ("type", "code"), "Immunization": ("vaccine-code", "code")}


def _clinical_parameters(resource_type: str) -> tuple[SearchParameter, ...]:
    code = (
        f"Any coding of {_CODE_DOCUMENTATION[resource_type]}, the source's own or a standard one added by "
        "terminology normalization: system|code, |code (no system), system| or code (any system)."
    )
    parameters = [
        _PATIENT_REFERENCE,
        SearchParameter("code", "token", code),
        SearchParameter(
            "date",
            "date",
            f"When it happened: {_DATE_DOCUMENTATION[resource_type]}; prefixes eq, ne, gt, lt, ge, le, sa, eb.",
        ),
    ]
    if resource_type in _ALIASES:
        alias, kind = _ALIASES[resource_type]
        parameters.append(SearchParameter(alias, "token", f"The same as code: {code}", kind=kind))
    if resource_type in _CATEGORY_DOCUMENTATION:
        parameters.append(
            SearchParameter(
                "category",
                "token",
                f"Any coding of {_CATEGORY_DOCUMENTATION[resource_type]}: system|code, |code, system| or code.",
            )
        )
    return tuple(parameters)


CLINICAL_PARAMETERS: dict[str, tuple[SearchParameter, ...]] = {
    resource_type: _clinical_parameters(resource_type) for resource_type in SEARCHABLE_TYPES
}

SORT_VALUES = ("date", "-date")

# Parameters about the result rather than the match (FHIR's "search result parameters"), and _format.
RESULT_PARAMETERS = ("_count", "_cursor", "_total", "_format", "_sort")

_IGNORED_VALUES = {"_format": ("json", "application/json", "application/fhir+json", "application/json+fhir")}


@dataclass(frozen=True)
class Criterion:
    parameter: SearchParameter
    values: tuple[str, ...]  # alternatives (comma-separated in the request): any one matches


@dataclass(frozen=True)
class ParsedSearch:
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    cursor: tuple[Any, ...] | None = None
    sort: str = ""
    with_total: bool = True
    # What the answer was computed from, for the self and next links (ignored parameters left out).
    used: tuple[tuple[str, str], ...] = ()
    types: tuple[str, ...] = ()  # $everything's _type


def _split_values(value: str) -> tuple[str, ...]:
    """A parameter value's alternatives: split on commas that are not escaped (\\,)."""
    parts = [part.replace("\\,", ",") for part in re.split(r"(?<!\\),", value)]
    return tuple(part for part in (part.strip() for part in parts) if part)


def _count(value: str) -> int:
    """The page size served: at most MAX_COUNT. Only ASCII digits count as a number: str.isdigit() also
    accepts "²", which int() refuses, and a number longer than MAX_COUNT needs no converting to be too big
    (nor would int() convert one of thousands of digits)."""
    if re.fullmatch(r"[0-9]+", value) is None:
        raise SearchError("_count must be a whole number", parameter="_count")
    digits = value.lstrip("0") or "0"
    return MAX_COUNT if len(digits) > len(str(MAX_COUNT)) else min(int(digits), MAX_COUNT)


def cursor_encode(*, sort: str, key: Sequence[Any]) -> str:
    return signing.dumps({"s": sort, "k": list(key)}, salt=_CURSOR_SALT)


def _cursor_decode(value: str, *, sort: str) -> tuple[Any, ...]:
    try:
        payload = signing.loads(value, salt=_CURSOR_SALT)
    except signing.BadSignature as error:
        raise SearchError(
            "_cursor is not valid: follow the next link as given", parameter="_cursor"
        ) from error
    if not isinstance(payload, dict) or payload.get("s") != sort or not isinstance(payload.get("k"), list):
        raise SearchError("_cursor belongs to another sort order", parameter="_cursor")
    return tuple(payload["k"])


def search_parse(
    params: Iterable[tuple[str, str]],
    *,
    parameters: Sequence[SearchParameter],
    sortable: bool = False,
    with_types: bool = False,
    lenient: bool = False,
) -> ParsedSearch:
    """Parse a query string (name, value pairs in order). Unknown parameters and modifiers are refused,
    unless ``lenient`` (``Prefer: handling=lenient``), when they are ignored and left out of the links."""
    by_name = {parameter.name: parameter for parameter in parameters}
    criteria: list[Criterion] = []
    used: list[tuple[str, str]] = []
    count, cursor_value, sort, with_total = DEFAULT_COUNT, "", "", True
    types: tuple[str, ...] = ()
    for name, value in params:
        base, _, modifier = name.partition(":")
        known = base in by_name or base in RESULT_PARAMETERS or (with_types and base == "_type")
        if not known or modifier or (base == "_sort" and not sortable):
            if lenient:
                continue
            if known:
                problem = f"modifier :{modifier} is not supported" if modifier else "is not supported here"
                raise SearchError(f"{base} {problem}", parameter=name, code="not-supported")
            supported = ", ".join([*by_name, *RESULT_PARAMETERS, *(["_type"] if with_types else [])])
            raise SearchError(
                f"unknown search parameter {name!r}; supported: {supported}",
                parameter=name,
                code="not-supported",
            )
        if base == "_format":
            if value not in _IGNORED_VALUES["_format"]:
                raise SearchError(
                    "only JSON is served (_format=json)", parameter="_format", code="not-supported"
                )
            continue
        if base == "_count":
            # The links carry the page size served, not the one asked for (a clamped _count=100000).
            count = _count(value)
            used.append((name, str(count)))
            continue
        used.append((name, value))
        if base == "_cursor":
            cursor_value = value
        elif base == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise SearchError("_total must be none, estimate or accurate", parameter="_total")
            with_total = value != "none"
        elif base == "_sort":
            if value not in SORT_VALUES:
                raise SearchError("_sort must be date or -date", parameter="_sort", code="not-supported")
            sort = value
        elif base == "_type":
            types = _split_values(value)
            if unknown := [item for item in types if not is_resource_type(item)]:
                raise SearchError(f"not FHIR R4 resource types: {', '.join(unknown)}", parameter="_type")
        elif alternatives := _split_values(value):  # an empty value matches everything: FHIR ignores it
            criteria.append(Criterion(by_name[base], alternatives))
    cursor = _cursor_decode(cursor_value, sort=sort) if cursor_value else None
    return ParsedSearch(tuple(criteria), count, cursor, sort, with_total, tuple(used), types)


@cache
def _letter_classes() -> dict[str, str]:
    """For each ASCII letter, a regex class of every Latin letter that folds to it, in both cases."""
    variants: dict[str, set[str]] = defaultdict(set)
    for letter in string.ascii_lowercase:
        variants[letter] |= {letter, letter.upper()}
    for codepoint in range(0x00C0, 0x0250):
        character = chr(codepoint)
        folded = ascii_fold(character)
        if len(folded) == 1 and folded in variants:
            variants[folded].add(character)
    return {letter: "[" + "".join(sorted(characters)) + "]" for letter, characters in variants.items()}


def name_prefix_pattern(value: str) -> str:
    """A regular expression (the same in PostgreSQL and Python) finding a word that starts with ``value``,
    ignoring case and diacritics: "jose" finds "José", "José" finds "JOSE", "garc" finds "de García"."""
    classes = _letter_classes()
    pieces = []
    for character in " ".join(ascii_fold(value).split()):
        if character in classes:
            pieces.append(classes[character])
        elif character.isdigit() or character in " '.-":
            pieces.append(f"[{character}]")
        # Anything else (regex syntax, punctuation) cannot be part of a stored name: it is left out.
    if not any(piece.strip("[ '.-]") for piece in pieces):
        raise ValueError("a name search needs a letter or a digit")
    return r"(^|[ '-])" + "".join(pieces)


def token_parts(value: str) -> tuple[str | None, str]:
    """(system, code): system None when the value has no '|', "" when it names no system (|code)."""
    if "|" not in value:
        return None, value
    system, code = value.split("|", 1)
    return system, code


_DATE_PATTERN = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,6}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _month_after(year: int, month: int) -> date:
    return date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)


def date_range(value: str, *, parameter: str) -> tuple[str, datetime, datetime]:
    """(prefix, start, end) of a date search value: the period its precision covers, end excluded, in UTC.

    Dates without a time are UTC days, as stored dates without a time are (``patients.ingest.extract``).
    """
    match = _DATE_PATTERN.match(value)
    if match is None:
        raise SearchError(
            f"{value!r} is not a FHIR date search value (e.g. ge2024-03-01)", parameter=parameter
        )
    parts = match.groupdict()
    prefix = parts["prefix"] or "eq"
    if prefix == "ap":
        raise SearchError(
            "the ap (approximately) prefix is not supported", parameter=parameter, code="not-supported"
        )
    try:
        year = int(parts["year"])
        if parts["month"] is None:
            start_day, end_day = date(year, 1, 1), date(year + 1, 1, 1)
        elif parts["day"] is None:
            start_day = date(year, int(parts["month"]), 1)
            end_day = _month_after(year, start_day.month)
        else:
            start_day = date(year, int(parts["month"]), int(parts["day"]))
            end_day = start_day + timedelta(days=1)
        if parts["hour"] is None:
            return (
                prefix,
                datetime.combine(start_day, datetime.min.time(), UTC),
                datetime.combine(end_day, datetime.min.time(), UTC),
            )
        zone = parts["zone"] or "Z"
        fraction = parts["fraction"] or ""
        start = datetime.fromisoformat(
            f"{start_day.isoformat()}T{parts['hour']}:{parts['minute']}:{parts['second'] or '00'}"
            f"{'.' + fraction.ljust(6, '0') if fraction else ''}{'+00:00' if zone == 'Z' else zone}"
        ).astimezone(UTC)
    except ValueError as error:
        raise SearchError(f"{value!r} is not a valid date: {error}", parameter=parameter) from error
    if fraction:
        precision = timedelta(microseconds=10 ** (6 - len(fraction)))
    elif parts["second"] is not None:
        precision = timedelta(seconds=1)
    else:
        precision = timedelta(minutes=1)
    return prefix, start, start + precision
