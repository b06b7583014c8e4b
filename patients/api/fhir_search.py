"""Reads behind the FHIR read API: search parameters parsed, and queries already narrowed to what the user may see.

Patient search works on golden patients; clinical searches and ``$everything`` on the stored resources of the
source records linked to them. Paging is keyset paging: a signed cursor holds the last sort key of a page, so
pages neither repeat nor skip rows while data keeps arriving, and deep pages cost what the first one does.
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
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from patients.fhir import is_resource_type
from patients.ingest.codings import ALLERGY_CATEGORY_SYSTEM
from patients.matching.features import ascii_fold
from patients.models import (
    MatchKey,
    Patient,
    PatientLink,
    ResourceCoding,
    SourceIdentifier,
    SourcePatient,
    SourceResource,
)
from patients.normalize import email_normalize, phone_to_e164
from patients.selectors import golden_patient_get, golden_patients_visible

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


# Parsing -------------------------------------------------------------------------------------------


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
    if not value.isdigit():
        raise SearchError("_count must be a whole number", parameter="_count")
    return min(int(value), MAX_COUNT)


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
        used.append((name, value))
        if base == "_count":
            count = _count(value)
        elif base == "_cursor":
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


# Value matching ------------------------------------------------------------------------------------


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


def _string_q(column: str, values: Sequence[str], *, parameter: str) -> Q:
    query = Q()
    for value in values:
        try:
            pattern = name_prefix_pattern(value)
        except ValueError as error:
            raise SearchError(f"{value!r}: {error}", parameter=parameter) from error
        query |= Q(**{f"{column}__regex": pattern})
    return query


def _token(value: str) -> tuple[str | None, str]:
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


def _date_q(column: str, prefix: str, start: Any, end: Any) -> Q:
    """Where a single point in time (or day) falls relative to the searched period [start, end)."""
    if prefix == "eq":
        return Q(**{f"{column}__gte": start, f"{column}__lt": end})
    if prefix == "ne":
        return Q(**{f"{column}__isnull": False}) & ~Q(**{f"{column}__gte": start, f"{column}__lt": end})
    if prefix in ("gt", "sa"):
        return Q(**{f"{column}__gte": end})
    if prefix in ("lt", "eb"):
        return Q(**{f"{column}__lt": start})
    if prefix == "ge":
        return Q(**{f"{column}__gte": start})
    return Q(**{f"{column}__lt": end})  # le


def _dates_q(column: str, values: Sequence[str], *, parameter: str, as_dates: bool = False) -> Q:
    query = Q()
    for value in values:
        prefix, start, end = date_range(value, parameter=parameter)
        if as_dates:  # a date column: the days the period touches
            last = end - timedelta(microseconds=1)
            query |= _date_q(column, prefix, start.date(), last.date() + timedelta(days=1))
        else:
            query |= _date_q(column, prefix, start, end)
    return query


# Pages ---------------------------------------------------------------------------------------------


@dataclass
class Page[RowT]:
    rows: list[RowT]
    total: int | None
    next_cursor: str = ""


def _sort_key(row: SourceResource, sort: str) -> list[Any]:
    if not sort:
        return [row.pk]
    return [row.effective_at.isoformat() if row.effective_at else None, row.pk]


def _after(sort: str, key: tuple[Any, ...]) -> Q:
    """Rows that come after ``key`` in the sort order (nulls last either way, then the primary key)."""
    if not sort:
        return Q(pk__gt=key[0])
    when, pk = key
    forward = sort == "date"
    beyond_pk = Q(pk__gt=pk) if forward else Q(pk__lt=pk)
    if when is None:
        return Q(effective_at__isnull=True) & beyond_pk
    moment = datetime.fromisoformat(when)
    beyond_time = Q(effective_at__gt=moment) if forward else Q(effective_at__lt=moment)
    return beyond_time | (Q(effective_at=moment) & beyond_pk) | Q(effective_at__isnull=True)


def _ordered(rows: QuerySet[SourceResource], sort: str) -> QuerySet[SourceResource]:
    if not sort:
        return rows.order_by("pk")
    if sort == "date":
        return rows.order_by(F("effective_at").asc(nulls_last=True), "pk")
    return rows.order_by(F("effective_at").desc(nulls_last=True), "-pk")


def _resource_page(
    rows: QuerySet[SourceResource],
    *,
    search: ParsedSearch,
    limit: int | None = None,
    start_key: Sequence[Any] | None = None,
) -> Page[SourceResource]:
    """One page of ``rows`` after the search's cursor. ``start_key`` is the cursor of a page that starts at
    the very first row, for a first page that had no room for rows (``$everything`` with ``_count=1``)."""
    limit = search.count if limit is None else limit
    total = rows.count() if search.with_total else None
    if search.cursor is not None:
        try:
            rows = rows.filter(_after(search.sort, search.cursor))
        except (TypeError, ValueError) as error:
            raise SearchError("_cursor is not valid", parameter="_cursor") from error
    found: list[SourceResource] = list(
        _ordered(rows, search.sort)
        .select_related("source")
        .annotate(golden_external_id=F("patient__link__patient__external_id"))[: limit + 1]
    )
    page = Page(rows=found[:limit], total=total)
    if len(found) > limit:
        if limit > 0:
            page.next_cursor = cursor_encode(sort=search.sort, key=_sort_key(found[limit - 1], search.sort))
        elif start_key is not None:
            page.next_cursor = cursor_encode(sort=search.sort, key=start_key)
    return page


# Patients ------------------------------------------------------------------------------------------


def golden_patients_any_visible(*, user: Any) -> bool:
    """Whether ``user`` may see any patient at all (the model permission, or a grant on some patient)."""
    if not user.is_authenticated:
        return False
    return bool(user.has_perm("patients.view_patient")) or golden_patients_visible(user).exists()


def _patients_of_records(records: QuerySet[Any]) -> Q:
    return Q(pk__in=PatientLink.objects.filter(source_patient__in=records).values("patient_id"))


def _identifier_q(values: Sequence[str]) -> Q:
    query = Q()
    for value in values:
        system, code = _token(value)
        identifiers = SourceIdentifier.objects.filter(
            resource_type="Patient",
            source_id=OuterRef("source_id"),
            source_record_id=OuterRef("source_record_id"),
        )
        if code:
            identifiers = identifiers.filter(value=code)
        if system is not None:
            identifiers = identifiers.filter(system=system)
        elif not code:
            continue
        query |= _patients_of_records(SourcePatient.objects.filter(Exists(identifiers)).values("pk"))
    return query


def _contact_q(values: Sequence[str], *, kind: str) -> Q:
    """Golden patients with this phone or e-mail, in their golden record or in any linked source record."""
    query = Q()
    for value in values:
        _, raw = _token(value)
        normalized = phone_to_e164(raw) if kind == "phone" else email_normalize(raw)
        if normalized is None:
            raise SearchError(
                f"{raw!r} is not a {'phone number' if kind == 'phone' else 'e-mail address'}", parameter=kind
            )
        # Every phone and e-mail of a source record is a blocking key of the patient index
        # ("p:<E.164>", "e:<address>"; patients.matching.features.blocking_keys), indexed.
        key = f"{'p' if kind == 'phone' else 'e'}:{normalized}"
        records = MatchKey.objects.filter(key=key).values("source_patient_id")
        query |= Q(**{kind: normalized}) | _patients_of_records(records)
    return query


def _patient_criterion_q(criterion: Criterion) -> Q:
    name, values = criterion.parameter.name, criterion.values
    if name == "name":
        return _string_q("family_name", values, parameter=name) | _string_q(
            "given_names", values, parameter=name
        )
    if name in ("family", "given"):
        return _string_q("family_name" if name == "family" else "given_names", values, parameter=name)
    if name == "birthdate":
        return _dates_q("birth_date", values, parameter=name, as_dates=True)
    if name == "gender":
        return Q(gender__in=[_token(value)[1] for value in values])
    if name == "identifier":
        return _identifier_q(values)
    return _contact_q(values, kind=name)  # phone, email


def patient_search(*, user: Any, search: ParsedSearch) -> Page[Patient]:
    """Golden patients ``user`` may see that meet every criterion, in a stable order, one page."""
    patients = golden_patients_visible(user).filter(merged_into__isnull=True)
    for criterion in search.criteria:
        patients = patients.filter(_patient_criterion_q(criterion))
    total = patients.count() if search.with_total else None
    if search.cursor is not None:
        if len(search.cursor) != 1 or not isinstance(search.cursor[0], int):
            raise SearchError("_cursor is not valid", parameter="_cursor")
        patients = patients.filter(pk__gt=search.cursor[0])
    found = list(patients.order_by("pk")[: search.count + 1])
    page = Page(rows=found[: search.count], total=total)
    if len(found) > search.count > 0:
        page.next_cursor = cursor_encode(sort="", key=[found[search.count - 1].pk])
    return page


def golden_patients_replaced_ids(patients: Sequence[Patient]) -> dict[int, list[str]]:
    """Patient pk -> external ids of the patients merged into it, for a page of patients in one query."""
    replaced: dict[int, list[str]] = defaultdict(list)
    for survivor, external_id in (
        Patient.objects.filter(merged_into__in=[patient.pk for patient in patients])
        .order_by("pk")
        .values_list("merged_into_id", "external_id")
    ):
        replaced[survivor].append(str(external_id))
    return replaced


# Clinical resources --------------------------------------------------------------------------------


def _records_of(patients: QuerySet[Patient] | Sequence[Patient]) -> QuerySet[PatientLink, Any]:
    """The source records linked to ``patients``, as a subquery."""
    return PatientLink.objects.filter(patient__in=patients).values("source_patient_id")


def _coding_q(values: Sequence[str], *, element: str) -> Q:
    query = Q()
    for value in values:
        system, code = _token(value)
        codings = ResourceCoding.objects.filter(element=element)
        if code:
            codings = codings.filter(code=code)
        if system is not None:
            codings = codings.filter(system=system)
        elif not code:
            continue
        query |= Q(pk__in=codings.values("resource_id"))
    return query


def _reference_id(value: str) -> str:
    """The id in "Patient/<id>", "<base>/Patient/<id>" or "<id>"."""
    return value.rstrip("/").rsplit("/", 1)[-1]


def _patient_q(values: Sequence[str], *, user: Any) -> Q:
    patients = []
    for value in values:
        patient = golden_patient_get(user=user, external_id=_reference_id(value)) if _is_uuid(value) else None
        if patient is not None:
            patients.append(patient)
    # A patient that is unknown or not allowed finds nothing, exactly like one without resources.
    return Q(patient_id__in=_records_of(patients)) if patients else Q(pk__in=[])


def _is_uuid(value: str) -> bool:
    return (
        re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", _reference_id(value))
        is not None
    )


def _visible_resources(*, user: Any, resource_types: Sequence[str]) -> QuerySet[SourceResource]:
    rows = SourceResource.objects.filter(resource_type__in=list(resource_types), patient__isnull=False)
    if user.has_perm("patients.view_patient"):
        return rows
    return rows.filter(patient_id__in=_records_of(golden_patients_visible(user)))


def resource_search(*, user: Any, resource_type: str, search: ParsedSearch) -> Page[SourceResource]:
    """Stored resources of one type, of patients ``user`` may see, that meet every criterion; one page.

    Each row carries ``golden_external_id``, the golden patient it belongs to.
    """
    rows = _visible_resources(user=user, resource_types=[resource_type])
    for criterion in search.criteria:
        kind = criterion.parameter.kind or criterion.parameter.name
        if kind == "patient":
            rows = rows.filter(_patient_q(criterion.values, user=user))
        elif kind in ("code", "category"):
            rows = rows.filter(_coding_q(criterion.values, element=kind))
        elif kind == "date":
            rows = rows.filter(_dates_q("effective_at", criterion.values, parameter=criterion.parameter.name))
    return _resource_page(rows, search=search)


def patient_everything(*, patient: Patient, search: ParsedSearch) -> Page[SourceResource]:
    """Every stored resource of the source records linked to ``patient`` (already authorized), in order of
    storage. The golden Patient comes first on the first page (the caller adds it) and counts in ``_count``."""
    rows = SourceResource.objects.filter(patient_id__in=_records_of([patient]))
    if search.types:
        rows = rows.filter(resource_type__in=search.types)
    if search.cursor is not None or search.count == 0:
        return _resource_page(rows, search=search)
    return _resource_page(rows, search=search, limit=search.count - 1, start_key=[0])


def golden_ids_of_records(*, pairs: set[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """(source pk, source patient id) -> golden patient external id, for the Patient references of a page."""
    if not pairs:
        return {}
    wanted = Q()
    by_source: dict[int, list[str]] = defaultdict(list)
    for source_id, record_id in pairs:
        by_source[source_id].append(record_id)
    for source_id, record_ids in by_source.items():
        wanted |= Q(source_id=source_id, source_record_id__in=record_ids)
    return {
        (source_id, record_id): str(external_id)
        for source_id, record_id, external_id in SourcePatient.objects.filter(
            wanted, link__isnull=False
        ).values_list("source_id", "source_record_id", "link__patient__external_id")
    }
