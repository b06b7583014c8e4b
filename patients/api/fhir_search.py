"""Reads behind the FHIR read API: parsed searches turned into queries already narrowed to what the user
may see.

Patient search works on golden patients; clinical searches and ``$everything`` on the stored resources of the
source records linked to them. Paging is keyset paging: a signed cursor holds the last sort key of a page, so
pages neither repeat nor skip rows while data keeps arriving, and deep pages cost what the first one does.
"""

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet

from patients.api.fhir_parameters import (
    Criterion,
    ParsedSearch,
    SearchError,
    cursor_encode,
    date_range,
    name_prefix_pattern,
    token_parts,
)
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


def _string_q(column: str, values: Sequence[str], *, parameter: str) -> Q:
    query = Q()
    for value in values:
        try:
            pattern = name_prefix_pattern(value)
        except ValueError as error:
            raise SearchError(f"{value!r}: {error}", parameter=parameter) from error
        query |= Q(**{f"{column}__regex": pattern})
    return query


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
        system, code = token_parts(value)
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
        _, raw = token_parts(value)
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
        return Q(gender__in=[token_parts(value)[1] for value in values])
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


def _records_of(patients: QuerySet[Patient] | Sequence[Patient]) -> QuerySet[PatientLink, Any]:
    """The source records linked to ``patients``, as a subquery."""
    return PatientLink.objects.filter(patient__in=patients).values("source_patient_id")


def _coding_q(values: Sequence[str], *, element: str) -> Q:
    query = Q()
    for value in values:
        system, code = token_parts(value)
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
