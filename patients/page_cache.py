"""What the patient page shows of the record, rendered once per version of the record.

Charting a record of 2,000 resources costs far more than a page should (grouping, reconciliation,
figures, templates), and care coordinators open the same patients again and again while the record
rarely changes between two views. The rendered record (name, source badges, demographics with their
provenance and conflicts, identifiers and contact points, then trends, encounters, problems,
medications, ..., documents) is kept per golden patient together with the record's fingerprint, and
reused while the fingerprint is unchanged. The rest of the page (navigation, the merged-id notice) is
drawn on every request: the rendering is shared by every user allowed to see the patient, so it holds
nothing that depends on the user or the request.

The fingerprint is read from PostgreSQL's row versions, so every write path invalidates it without
having to remember to, COPY and raw SQL included: each row's ``xmin`` (the transaction that wrote this
version) and ``cmin`` (the command within it) change whenever the row is inserted or updated; a row
that leaves or joins the record changes the count. It covers the golden patient, its links with their
source records and sources (the badges), and its conflicts. The resources of the linked records (up to
thousands) are covered by their records' ``SourceResourcesChange`` rows, which triggers on the resource
table add for every statement that inserts, changes or deletes a resource of a record: their count and
newest id (a change committed late, with an older id, still moves the count).
What else the rendering reads is fixed for the life of a process (code, templates, the shipped
concept table), and the cache lives in that process's memory (``CACHES["patient_pages"]``, local memory
by default: PHI stays out of any shared cache server) so a deploy starts it empty.

Only the rendering is reused. Access is checked and the view audited on every request, before this runs.
On another database than PostgreSQL (the SQLite unit layer) nothing is cached.
"""

import functools
from collections.abc import Callable

from django.core.cache import caches
from django.db import connection
from django.utils import timezone, translation

from patients.models import (
    Patient,
    PatientConflict,
    PatientLink,
    Source,
    SourcePatient,
    SourceResourcesChange,
)

CACHE_ALIAS = "patient_pages"


@functools.cache
def _version_sql() -> str:
    """One statement; ``xmin``/``cmin`` are 32-bit ids, summed as bigint (a change moves the sum)."""
    link, record, source = PatientLink._meta.db_table, SourcePatient._meta.db_table, Source._meta.db_table
    change, conflict = SourceResourcesChange._meta.db_table, PatientConflict._meta.db_table
    # Table names come from the models, never from input.
    return f"""
        SELECT concat_ws('/',
            p.xmin::text || '.' || p.cmin::text,
            (SELECT string_agg(concat_ws('.', l.id, l.xmin, l.cmin, r.id, r.xmin, r.cmin, s.xmin, s.cmin,
                                         (SELECT count(*) || '.' || coalesce(max(c.id), 0)
                                            FROM {change} c WHERE c.source_patient_id = r.id)), ','
                               ORDER BY l.id)
               FROM {link} l JOIN {record} r ON r.id = l.source_patient_id JOIN {source} s ON s.id = r.source_id
              WHERE l.patient_id = p.id),
            (SELECT concat_ws('.', count(*), sum(c.xmin::text::bigint), sum(c.cmin::text::bigint))
               FROM {conflict} c WHERE c.patient_id = p.id)
        )
        FROM {Patient._meta.db_table} p WHERE p.id = %s
    """  # noqa: S608


def record_version(patient: Patient) -> str | None:
    """A value that changes whenever anything the rendered record shows changes; None: cannot tell."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(_version_sql(), [patient.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    # Dates are rendered in the active time zone and language: a view in another one is another version.
    return f"{row[0]}|{timezone.get_current_timezone_name()}|{translation.get_language()}"


def record_cached[T](patient: Patient, part: str, build: Callable[[], T]) -> T:
    """``part`` of what the page shows of the record ("record": the rendered HTML; "chart": the
    ``PatientChart`` that "Show all" and the lab picker draw from): from the cache when the record has not
    changed since, else ``build()``.

    The version is read BEFORE building: a change committed meanwhile then makes the next view miss,
    instead of the older value being kept under the newer version.
    """
    version = record_version(patient)
    if version is None:
        return build()
    cache = caches[CACHE_ALIAS]
    key = f"patient-{part}:{patient.pk}"
    cached = cache.get(key)
    if cached is not None and cached[0] == version:
        value: T = cached[1]
        return value
    value = build()
    cache.set(key, (version, value))
    return value


def record_html_get(patient: Patient, render: Callable[[], str]) -> str:
    """The rendered record: from the cache when the record has not changed since, else ``render()``."""
    return record_cached(patient, "record", render)
