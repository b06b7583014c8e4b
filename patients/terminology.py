"""Terminology normalization where it touches storage: ingested entries, and stored resources after a new map.

The normalization itself is patients.normalize.resource_terminology_normalize (pure); the maps come from
governance.policies.terminology, loaded once per process.
"""

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.policies.terminology import (
    UnmappedConcept,
    terminology_maps_current,
    terminology_maps_forget,
    unmapped_codes_report,
)
from patients.ingest.codings import resource_codings_replace
from patients.ingest.entries import Entry
from patients.ingest.extract import resource_code
from patients.ingest.store import canonical_json
from patients.models import Source, SourceResource
from patients.normalize import CODED_ELEMENTS, MEDICATION_RESOURCE_TYPES, resource_terminology_normalize

RENORMALIZE_BATCH_SIZE = 500


def entries_terminology_normalize(entries: list[Entry], *, source: Source) -> list[Entry]:
    """Standard codes for every entry of a payload; what stays unmapped is queued once the payload commits.

    Called by ingestion after the other normalizations, inside the payload's transaction.
    """
    maps = terminology_maps_current()
    seen: Counter[tuple[str, UnmappedConcept]] = Counter()
    for entry in entries:
        entry.resource, findings = resource_terminology_normalize(
            entry.resource, maps=maps, source_slug=source.slug
        )
        seen.update((entry.resource_type, concept) for concept in findings.unmapped)
    if seen:
        source_id = source.pk
        # After the commit: a payload that is rolled back (quarantined) must not count.
        transaction.on_commit(lambda: unmapped_codes_report(source_id=source_id, seen=seen))
    return entries


@dataclass(frozen=True)
class RenormalizeResult:
    candidates: int
    examined: int
    updated: int


def _candidates(*, source_id: int | None, local_system: str, local_code: str, alias: str) -> Any:
    rows = SourceResource.objects.filter(resource_type__in=list(CODED_ELEMENTS))
    if source_id is not None:
        rows = rows.filter(source_id=source_id)
    # The indexed code is the first coding of the main concept. Free text, and medications whose concept
    # sits in a contained Medication, have no indexed code: every such row is a candidate.
    without_code = rows.filter(code="")
    if alias:
        return without_code
    with_code = rows.filter(code_system=local_system)
    if local_code:
        with_code = with_code.filter(code=local_code)
    medications = without_code.filter(resource_type__in=list(MEDICATION_RESOURCE_TYPES))
    return with_code | medications


def source_resources_renormalize(
    *,
    source_id: int | None,
    local_system: str = "",
    local_code: str = "",
    alias: str = "",
    progress: Callable[[int, int, int], None] | None = None,
    batch_size: int = RENORMALIZE_BATCH_SIZE,
) -> RenormalizeResult:
    """Normalize again the stored resources a new map (local system and code, or alias) may affect.

    Updates `resource`, `code_system`, `code` (and `content_sha256`, so the next identical delivery is
    still recognized as unchanged) of the rows that change; the others are left alone. Runs batch by
    batch, each in its own transaction with its rows locked, so ingestion goes on meanwhile.
    """
    terminology_maps_forget()
    maps = terminology_maps_current()
    candidates = _candidates(
        source_id=source_id, local_system=local_system, local_code=local_code, alias=alias
    )
    primary_keys = list(candidates.order_by("pk").values_list("pk", flat=True))
    examined = updated = 0
    for start in range(0, len(primary_keys), batch_size):
        batch = primary_keys[start : start + batch_size]
        with transaction.atomic():
            rows = list(
                SourceResource.objects.select_for_update(of=("self",))
                .filter(pk__in=batch)
                .select_related("source")
                .order_by("pk")
            )
            changed = []
            now = timezone.now()
            for row in rows:
                normalized, _ = resource_terminology_normalize(
                    row.resource, maps=maps, source_slug=row.source.slug
                )
                if normalized == row.resource:
                    continue
                text = canonical_json(normalized)
                row.resource = normalized
                row.code_system, row.code = resource_code(normalized)
                row.content_sha256 = hashlib.sha256(text.encode()).hexdigest()
                row.updated_at = now
                changed.append(row)
            SourceResource.objects.bulk_update(
                changed, ["resource", "code_system", "code", "content_sha256", "updated_at"]
            )
            resource_codings_replace(changed)
        examined += len(rows)
        updated += len(changed)
        if progress is not None:
            progress(len(primary_keys), examined, updated)
    return RenormalizeResult(candidates=len(primary_keys), examined=examined, updated=updated)
