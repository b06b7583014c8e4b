"""The transactional outbox: domain events written with the change that causes them, read later by consumers.

Producers call ``outbox_record`` inside their own transaction, so an event exists if and only if its
change was committed. Consumers (engagement journeys, notifications) poll ``outbox_pending`` and call
``outbox_mark_published`` for what they took, in one transaction.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from core.models import OutboxEvent


@dataclass(frozen=True, slots=True)
class OutboxEventDraft:
    """An event to record. ``payload`` holds ids and codes only: never names, phones, emails or addresses."""

    event_type: str
    aggregate_type: str
    aggregate_ref: str
    dedupe_key: str
    patient_ref: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None  # None: now


def outbox_record(*, events: list[OutboxEventDraft]) -> int:
    """Insert the events, skipping any already recorded (same type, aggregate and dedupe key).

    Runs in the caller's transaction: a rollback takes the events with it. Returns how many rows were
    offered for insertion (conflicts are skipped silently by the database, so this is an upper bound).
    """
    if not events:
        return 0
    now = timezone.now()
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                event_type=event.event_type,
                aggregate_type=event.aggregate_type,
                aggregate_ref=event.aggregate_ref,
                dedupe_key=event.dedupe_key,
                patient_ref=event.patient_ref,
                payload=event.payload,
                occurred_at=event.occurred_at or now,
                recorded_at=now,
            )
            for event in events
        ],
        ignore_conflicts=True,
        batch_size=500,
    )
    return len(events)


def outbox_pending(*, event_types: Iterable[str] | None = None, limit: int = 100) -> list[OutboxEvent]:
    """The oldest unpublished events, optionally of some types only.

    Inside a transaction the rows are locked and rows locked by another consumer are skipped (on databases
    that can), so concurrent consumers do not take the same event.
    """
    events = OutboxEvent.objects.filter(published_at__isnull=True).order_by("recorded_at", "id")
    if event_types is not None:
        events = events.filter(event_type__in=list(event_types))
    if connection.in_atomic_block:
        events = events.select_for_update(skip_locked=True)
    return list(events[:limit])


def outbox_mark_published(*, event_ids: Iterable[uuid.UUID | str]) -> int:
    """Mark events (by external id) as taken by a consumer; already published ones are left as they are."""
    return OutboxEvent.objects.filter(external_id__in=list(event_ids), published_at__isnull=True).update(
        published_at=timezone.now(), updated_at=timezone.now()
    )
