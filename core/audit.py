"""Recording reads of protected health information.

One helper for every entry point: HTML views pass the Django request, DRF and the FHIR API pass their
request (a DRF ``Request`` wraps the Django one), tasks and commands pass no request and run inside
``acting_as(actor)``. Writes to audited models are recorded by django-auditlog.
"""

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connections, models, router
from django.http import HttpRequest
from django.utils import timezone

from core.context import current_actor
from core.models import AccessEvent

_USER_AGENT_MAX = 300
_PATH_MAX = 500


def _django_request(request: Any) -> HttpRequest | None:
    if request is None:
        return None
    return getattr(request, "_request", request)


def _client_address(request: HttpRequest) -> str | None:
    address = request.META.get("REMOTE_ADDR") or None
    return address


def phi_access_record(
    *,
    purpose: str,
    request: Any = None,
    actor: User | AnonymousUser | None = None,
    patient_ref: object = "",
    obj: models.Model | None = None,
    action: str = AccessEvent.Action.READ,
    channel: str | None = None,
) -> AccessEvent:
    """Write one access audit row and return it.

    ``patient_ref`` is the patient's external id; ``obj`` the record read, when it is not the patient itself.
    The actor comes from the request, else from ``acting_as``; an unauthenticated read is refused upstream.
    """
    values = _common_values(
        request=request, actor=actor, obj=obj, action=action, channel=channel, purpose=purpose
    )
    event = AccessEvent(patient_ref=str(patient_ref or ""), **values)
    connection = connections[router.db_for_write(AccessEvent)]
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        return event
    with connection.cursor() as cursor:
        cursor.execute(
            _events_insert_sql(returning=True),
            [*(values[name] for name in _COMMON_COLUMNS), [event.patient_ref]],
        )
        event.pk, event.external_id = cursor.fetchone()
    event._state.adding = False
    event._state.db = connection.alias
    return event


def phi_access_record_many(
    *,
    purpose: str,
    patient_refs: Sequence[object],
    request: Any = None,
    actor: User | AnonymousUser | None = None,
    obj: models.Model | None = None,
    action: str = AccessEvent.Action.READ,
    channel: str | None = None,
) -> int:
    """One access audit row per patient of ``patient_refs`` (a search result, a FHIR Bundle), in one
    statement; returns how many were written.

    No model instance is built for the rows: a search records up to 25 of them on every key the user types,
    and building them cost about as much Python as the rest of the search."""
    context = phi_access_context(
        purpose=purpose, request=request, actor=actor, obj=obj, action=action, channel=channel
    )
    return _events_write(context, [str(patient_ref or "") for patient_ref in patient_refs])


@dataclass(frozen=True)
class AccessContext:
    """Who reads protected health information, from where, how and why: what the access audit rows of one
    read share. ``phi_access_context`` makes one; ``phi_rows_read`` records a read with it."""

    values: dict[str, Any]


def phi_access_context(
    *,
    purpose: str,
    request: Any = None,
    actor: User | AnonymousUser | None = None,
    obj: models.Model | None = None,
    action: str = AccessEvent.Action.READ,
    channel: str | None = None,
) -> AccessContext:
    """The context of a read about to happen (``phi_access_record``'s arguments but the patient)."""
    return AccessContext(
        _common_values(request=request, actor=actor, obj=obj, action=action, channel=channel, purpose=purpose)
    )


def phi_rows_read(
    sql: str, params: Sequence[Any], *, patient_ref_column: str, context: AccessContext, order_by: str = ""
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (a SELECT whose ``patient_ref_column`` is each row's patient external id), an
    access audit row written for each, as ``phi_access_record_many`` writes them.

    On PostgreSQL the rows are read and recorded by one statement (a data-modifying WITH), which commits
    before it answers: the rows cannot be had without their record, and a search costs one round trip
    less. ``order_by`` orders what it returns (by the SELECT's column names), as a WITH does not keep the
    SELECT's order. Elsewhere the SELECT runs, then the insert."""
    connection = connections[router.db_for_write(AccessEvent)]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({sql}) q {order_by}", params)  # noqa: S608
            columns = [column[0] for column in cursor.description]
            rows = list(cursor.fetchall())
        index = columns.index(patient_ref_column)
        _events_write(context, [_sqlite_ref(row[index]) for row in rows])
        return rows
    with connection.cursor() as cursor:
        cursor.execute(
            _rows_read_sql(sql, patient_ref_column, order_by),
            [*params, *(context.values[name] for name in _COMMON_COLUMNS)],
        )
        return list(cursor.fetchall())


def _events_write(context: AccessContext, refs: list[str]) -> int:
    """One row per patient reference, in one statement; how many were written."""
    if not refs:
        return 0
    connection = connections[router.db_for_write(AccessEvent)]
    if connection.vendor != "postgresql":
        AccessEvent.objects.bulk_create([AccessEvent(patient_ref=ref, **context.values) for ref in refs])
        return len(refs)
    with connection.cursor() as cursor:
        cursor.execute(
            _events_insert_sql(returning=False), [*(context.values[name] for name in _COMMON_COLUMNS), refs]
        )
    return len(refs)


def _common_values(
    *,
    request: Any,
    actor: User | AnonymousUser | None,
    obj: models.Model | None,
    action: str,
    channel: str | None,
    purpose: str,
) -> dict[str, Any]:
    """What the rows of one call share: every column but the id and the patient, in ``_COMMON_COLUMNS`` order."""
    django_request = _django_request(request)
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    if actor is None:
        actor = current_actor()
    user = actor if actor is not None and actor.is_authenticated else None

    if channel is None:
        if django_request is None:
            channel = AccessEvent.Channel.TASK
        elif django_request.path.startswith("/fhir/"):
            channel = AccessEvent.Channel.FHIR
        elif django_request.path.startswith("/api/"):
            channel = AccessEvent.Channel.API
        else:
            channel = AccessEvent.Channel.HTML

    object_type = object_ref = ""
    if obj is not None:
        object_type = obj._meta.label_lower
        object_ref = str(getattr(obj, "external_id", obj.pk))

    return {
        "occurred_at": timezone.now(),
        "actor_id": user.pk if user is not None else None,
        "actor_username": user.get_username() if user is not None else "",
        "action": action,
        "channel": channel,
        "object_type": object_type,
        "object_ref": object_ref,
        "purpose": purpose,
        "path": django_request.get_full_path()[:_PATH_MAX] if django_request is not None else "",
        "remote_addr": _client_address(django_request) if django_request is not None else None,
        "user_agent": (django_request.META.get("HTTP_USER_AGENT", "") if django_request is not None else "")[
            :_USER_AGENT_MAX
        ],
    }


# The rows of one call differ only in their id and patient: one statement of fixed shape for any number of
# them, one row included (every page view writes one). (bulk_create sends 12 parameters per row; past 50 in
# all psycopg parses the statement anew each time: 25 search hits cost 6 ms this way against under 2; and
# Model.save() of one row took 1.5 ms and 0.8 ms of CPU against 1.0 and 0.55, most of it the commit.)
# PostgreSQL draws the ids, as ``core.models.uuid7`` does: the milliseconds of the clock, then random bits
# (gen_random_uuid's, with the version set to 7).
_UUID7_SQL = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
    "52, 1), 53, 1), 'hex')::uuid"
)
_COMMON_COLUMNS = (
    "occurred_at",
    "actor_id",
    "actor_username",
    "action",
    "channel",
    "object_type",
    "object_ref",
    "purpose",
    "path",
    "remote_addr",
    "user_agent",
)


@functools.cache
def _insert_head_sql() -> str:
    """``INSERT INTO table (columns)`` of a row per patient: its id, its patient, then ``_COMMON_COLUMNS``
    (names from the model's metadata)."""
    columns = {field.attname: field.column for field in AccessEvent._meta.concrete_fields}
    names = ", ".join(f'"{columns[name]}"' for name in ("external_id", "patient_ref", *_COMMON_COLUMNS))
    return f'INSERT INTO "{AccessEvent._meta.db_table}" ({names})'


# The values of ``_COMMON_COLUMNS``, all parameters.
_COMMON_PLACEHOLDERS = ", ".join("%s" for _ in _COMMON_COLUMNS)


@functools.cache
def _events_insert_sql(*, returning: bool) -> str:
    return (
        f"{_insert_head_sql()} SELECT {_UUID7_SQL}, patient_ref, {_COMMON_PLACEHOLDERS} "  # noqa: S608
        "FROM unnest(%s::text[]) AS rows (patient_ref)"
    ) + (' RETURNING "id", "external_id"' if returning else "")


def _rows_read_sql(sql: str, patient_ref_column: str, order_by: str) -> str:
    return (
        f"WITH read AS MATERIALIZED ({sql}), "  # noqa: S608 (the caller's statement and column)
        f"recorded AS ({_insert_head_sql()} "
        f'SELECT {_UUID7_SQL}, read."{patient_ref_column}"::text, {_COMMON_PLACEHOLDERS} FROM read) '
        f"SELECT * FROM read {order_by}"
    )


def _sqlite_ref(value: Any) -> str:
    """A patient reference read from SQLite, as PostgreSQL's text form has it: SQLite keeps a UUID as 32
    hexadecimal digits, without the dashes."""
    if isinstance(value, str) and len(value) == 32:
        try:
            return str(uuid.UUID(hex=value))
        except ValueError:
            return value
    return str(value or "")
