"""Writes of governance data: terminology maps, the unmapped-code queue, re-normalization runs."""

import uuid
from collections import Counter

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from core.context import acting_as
from core.errors import ApplicationError
from governance.models import RenormalizationRun, TerminologyMap, UnmappedCode
from governance.policies.terminology import (
    SAME_CODE,
    UnmappedConcept,
    alias_normalize,
    default_map_entries,
    terminology_maps_forget,
)
from patients.models import Source


@transaction.atomic
def terminology_defaults_load() -> tuple[int, int]:
    """Create or update the shipped default maps (stewards' maps are never touched). Returns (created, updated)."""
    created = updated = 0
    for entry in default_map_entries():
        found = TerminologyMap.objects.filter(
            source__isnull=True,
            local_system=entry.local_system,
            local_code=entry.local_code,
            alias=entry.alias,
        ).first()
        values = {
            "standard_system": entry.standard_system,
            "standard_code": entry.standard_code,
            "standard_display": entry.standard_display,
        }
        if found is None:
            TerminologyMap.objects.create(
                local_system=entry.local_system,
                local_code=entry.local_code,
                alias=entry.alias,
                origin=TerminologyMap.Origin.SHIPPED,
                **values,
            )
            created += 1
        elif found.origin == TerminologyMap.Origin.SHIPPED and any(
            getattr(found, key) != value for key, value in values.items()
        ):
            for key, value in values.items():
                setattr(found, key, value)
            found.save()
            updated += 1
    terminology_maps_forget()
    return created, updated


def unmapped_codes_record(*, source_id: int, seen: Counter[tuple[str, UnmappedConcept]]) -> None:
    """Add what one payload left unmapped to the queue: (resource type, concept) -> resources seen with it.

    One statement, in its own short transaction: the queue's counters must not hold row locks for the
    length of an ingestion transaction, where workers would queue behind each other on a popular code.
    """
    if not seen:
        return
    now = timezone.now()
    table = UnmappedCode._meta.db_table
    external_id = UnmappedCode._meta.get_field("external_id")
    rows = [
        (
            external_id.get_db_prep_value(uuid.uuid4(), connection),
            now,
            now,
            source_id,
            resource_type[:64],
            concept.system[:200],
            concept.code[:100],
            concept.alias[:200],
            concept.display[:300],
            count,
            now,
            now,
            UnmappedCode.Status.OPEN,
        )
        for (resource_type, concept), count in seen.items()
    ]
    placeholders = ", ".join(["(" + ", ".join(["%s"] * 13) + ")"] * len(rows))
    # Both PostgreSQL and SQLite upsert with ON CONFLICT; the ORM cannot add to a counter on conflict.
    sql = (
        f"INSERT INTO {table} (external_id, created_at, updated_at, source_id, resource_type, system, code, "  # noqa: S608 - names from the model, values as parameters
        "alias, display, count, first_seen_at, last_seen_at, status) "
        f"VALUES {placeholders} "
        "ON CONFLICT (source_id, resource_type, system, code, alias) DO UPDATE SET "
        f"count = {table}.count + excluded.count, last_seen_at = excluded.last_seen_at, "
        "display = excluded.display, updated_at = excluded.updated_at"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


def _renormalization_enqueue(run_id: int) -> None:
    from governance.tasks import terminology_renormalize

    terminology_renormalize.delay(run_id)


@transaction.atomic
def terminology_map_create(
    *,
    actor: User | None,
    source: Source | None,
    local_system: str,
    local_code: str = "",
    alias: str = "",
    standard_system: str,
    standard_code: str,
    standard_display: str = "",
    note: str = "",
) -> TerminologyMap:
    """A steward's map. Matching queue entries become mapped, and the stored resources it affects are
    re-normalized by a Celery task once this commits (progress in a RenormalizationRun)."""
    terminology_map = TerminologyMap(
        source=source,
        local_system=local_system.strip(),
        local_code=local_code.strip(),
        alias=alias_normalize(alias),
        standard_system=standard_system.strip(),
        standard_code=standard_code.strip(),
        standard_display=standard_display.strip(),
        origin=TerminologyMap.Origin.STEWARD,
        note=note,
    )
    try:
        terminology_map.full_clean()
    except ValidationError as error:
        raise ApplicationError("This map cannot be saved.", extra={"errors": error.message_dict}) from error
    with acting_as(actor):
        terminology_map.save()
    matching = UnmappedCode.objects.filter(status=UnmappedCode.Status.OPEN)
    if source is not None:
        matching = matching.filter(source=source)
    if terminology_map.alias:
        matching = matching.filter(alias=terminology_map.alias)
    elif terminology_map.local_code == SAME_CODE:
        matching = matching.filter(system=terminology_map.local_system)
    else:
        matching = matching.filter(system=terminology_map.local_system, code=terminology_map.local_code)
    matching.update(
        status=UnmappedCode.Status.MAPPED, terminology_map=terminology_map, updated_at=timezone.now()
    )
    terminology_maps_forget()
    run = RenormalizationRun.objects.create(terminology_map=terminology_map)
    transaction.on_commit(lambda: _renormalization_enqueue(run.pk))
    return terminology_map


def unmapped_code_map(
    *,
    actor: User | None,
    unmapped: UnmappedCode,
    standard_system: str,
    standard_code: str,
    standard_display: str = "",
    every_source: bool = False,
) -> TerminologyMap:
    """Map one queue entry (its code, or its text when it has none)."""
    if unmapped.status != UnmappedCode.Status.OPEN:
        raise ApplicationError("This code is not open any more.")
    return terminology_map_create(
        actor=actor,
        source=None if every_source else unmapped.source,
        local_system=unmapped.system if unmapped.code else "",
        local_code=unmapped.code,
        alias=unmapped.alias if not unmapped.code else "",
        standard_system=standard_system,
        standard_code=standard_code,
        standard_display=standard_display,
    )


def renormalization_run_execute(*, run_id: int) -> RenormalizationRun:
    """Re-normalize the stored resources one map affects, recording progress on the run. Idempotent."""
    from patients.terminology import source_resources_renormalize

    run = RenormalizationRun.objects.select_related("terminology_map", "terminology_map__source").get(
        pk=run_id
    )
    if run.status == RenormalizationRun.Status.DONE:
        return run
    run.status = RenormalizationRun.Status.RUNNING
    run.started_at = timezone.now()
    run.save(update_fields=["status", "started_at", "updated_at"])
    terminology_maps_forget()
    terminology_map = run.terminology_map

    def progress(candidates: int, examined: int, updated: int) -> None:
        RenormalizationRun.objects.filter(pk=run.pk).update(
            candidates=candidates, examined=examined, updated=updated, updated_at=timezone.now()
        )

    try:
        result = source_resources_renormalize(
            source_id=terminology_map.source_id,
            local_system=terminology_map.local_system,
            local_code="" if terminology_map.local_code == SAME_CODE else terminology_map.local_code,
            alias=terminology_map.alias,
            progress=progress,
        )
    except Exception as error:
        run.refresh_from_db()
        run.status = RenormalizationRun.Status.FAILED
        run.error = f"{type(error).__name__}: {error}"[:2000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at", "updated_at"])
        raise
    run.refresh_from_db()
    run.candidates, run.examined, run.updated = result.candidates, result.examined, result.updated
    run.status = RenormalizationRun.Status.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["candidates", "examined", "updated", "status", "finished_at", "updated_at"])
    return run


def unmapped_codes_ignore(*, actor: User | None, unmapped_ids: list[int]) -> int:
    """Close queue entries no standard code applies to. Returns how many were open."""
    with transaction.atomic(), acting_as(actor):
        return UnmappedCode.objects.filter(pk__in=unmapped_ids, status=UnmappedCode.Status.OPEN).update(
            status=UnmappedCode.Status.IGNORED, updated_at=timezone.now()
        )
