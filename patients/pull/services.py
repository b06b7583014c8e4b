"""Writes of FHIR pulls: landing each page through the ingest pipeline, and the per-type checkpoints."""

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction

from core.context import acting_as
from patients.ingest.processing import payload_process, payload_receive
from patients.models import InboundPayload, PullCheckpoint, Source
from patients.pull.authorization import authorization_build
from patients.pull.client import FhirSearchClient, HttpTransport
from patients.pull.configuration import pull_settings_read
from patients.pull.errors import PullError, PullRejected
from patients.pull.summary import PullSummary

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# Expired paging links: many servers keep search result sets for minutes only.
EXPIRED_LINK_STATUSES = frozenset({404, 410})


def _instant(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _later_mark(current: str, candidate: str) -> str:
    """The later of two FHIR instants, compared as times (offsets differ) but kept as the server wrote it."""
    candidate_time = _instant(candidate)
    if candidate_time is None:
        return current
    current_time = _instant(current) if current else None
    if current_time is None or candidate_time > current_time:
        return candidate
    return current


def page_collection(bundle: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A searchset page as a ``collection`` Bundle of its resources, and the page's greatest lastUpdated.

    The FHIR parser accepts the Bundle types a sender submits, not ``searchset``; the search-only parts
    (``search`` mode and score, the ``link`` and ``total``) say nothing about the resources themselves.
    OperationOutcome entries (search mode ``outcome``) are warnings about the search, not data.
    """
    entries = []
    mark = ""
    for raw_entry in bundle.get("entry") or []:
        if not isinstance(raw_entry, dict) or not isinstance(raw_entry.get("resource"), dict):
            continue
        if (raw_entry.get("search") or {}).get("mode") == "outcome":
            continue
        resource = raw_entry["resource"]
        entry: dict[str, Any] = {"resource": resource}
        if isinstance(raw_entry.get("fullUrl"), str):
            entry["fullUrl"] = raw_entry["fullUrl"]
        entries.append(entry)
        last_updated = (resource.get("meta") or {}).get("lastUpdated")
        if isinstance(last_updated, str):
            mark = _later_mark(mark, last_updated)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}, mark


@transaction.atomic
def pull_checkpoint_save(
    *, source: Source, resource_type: str, high_water_mark: str, next_url: str
) -> PullCheckpoint:
    """Record how far a type's pull has come; the mark never moves back (overlapping pulls, ``--since``)."""
    checkpoint, _ = PullCheckpoint.objects.select_for_update().get_or_create(
        source=source, resource_type=resource_type
    )
    checkpoint.high_water_mark = _later_mark(checkpoint.high_water_mark, high_water_mark)
    checkpoint.next_url = next_url
    checkpoint.full_clean()
    checkpoint.save()
    return checkpoint


def _page_store(*, source: Source, url: str, collection: dict[str, Any], summary: PullSummary) -> None:
    # The landed bytes are the collection made from the page, not the page's own bytes: those could not
    # be processed (searchset) and their links and scores change from one request to the next, which
    # would defeat duplicate recognition. The page URL is kept as the payload's origin.
    body = json.dumps(collection, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    payload, created = payload_receive(
        source=source,
        body=body,
        format=InboundPayload.Format.FHIR,
        channel=InboundPayload.Channel.PULL,
        content_type="application/fhir+json",
        origin=url,
        enqueue=False,
    )
    if not created:
        summary.duplicates += 1
        if payload.status != InboundPayload.Status.RECEIVED:
            return
        # Landed by a pull that stopped before processing it: process it now.
    else:
        summary.payloads_stored += 1
    outcome = payload_process(payload_id=payload.pk)
    processed = outcome.payload
    summary.resources_stored.update(processed.outcome.get("stored", {}))
    summary.resources_unchanged.update(processed.outcome.get("unchanged", {}))
    if processed.status == InboundPayload.Status.QUARANTINED:
        # Problem messages can quote values from the resources; the payload page shows them to stewards.
        summary.errors.append(
            {
                "payload": str(processed.external_id),
                "kind": str(processed.outcome.get("kind", "")),
                "problem_count": len(processed.problems),
            }
        )


def _resource_type_pull(
    *, source: Source, client: FhirSearchClient, resource_type: str, since: str, summary: PullSummary
) -> None:
    checkpoint = PullCheckpoint.objects.filter(source=source, resource_type=resource_type).first()
    mark = checkpoint.high_water_mark if checkpoint else ""
    resuming = bool(checkpoint and checkpoint.next_url and not since)
    url = (
        checkpoint.next_url
        if resuming and checkpoint
        else client.search_url(resource_type, since=since or mark)
    )
    while url:
        try:
            bundle = client.page_get(url)
        except PullRejected as error:
            if not (resuming and error.status in EXPIRED_LINK_STATUSES):
                raise
            # The server forgot the result set of the interrupted search: query again from the mark.
            logger.info(
                "source %s: %s paging link expired, searching from the mark", source.slug, resource_type
            )
            url = client.search_url(resource_type, since=mark)
            resuming = False
            continue
        resuming = False
        collection, page_mark = page_collection(bundle)
        if collection["entry"]:
            _page_store(source=source, url=url, collection=collection, summary=summary)
        summary.pages += 1
        next_url = client.next_url(bundle, current_url=url)
        checkpoint = pull_checkpoint_save(
            source=source, resource_type=resource_type, high_water_mark=page_mark, next_url=next_url
        )
        mark = checkpoint.high_water_mark
        url = next_url
    summary.high_water_marks[resource_type] = mark


def source_pull(*, actor: "User | None", source: Source, since: datetime | None = None) -> PullSummary:
    """Pull every configured resource type updated since the checkpoint (or ``since``) from the source.

    Each page is stored and processed before the checkpoint moves past it, so a pull that stops (crash,
    server down beyond the retries) resumes at the page it stopped at. Raises PullError on a failure,
    with ``summary`` set to what was done before it.
    """
    summary = PullSummary(source=source.slug)
    transport: HttpTransport | None = None
    since_text = since.astimezone(UTC).isoformat() if since is not None else ""
    try:
        settings = pull_settings_read(source.connector_settings)
        transport = HttpTransport(
            timeout_seconds=settings.timeout_seconds,
            max_retries=settings.max_retries,
            backoff_seconds=settings.backoff_seconds,
        )
        client = FhirSearchClient(
            settings=settings,
            transport=transport,
            authorization=authorization_build(auth=settings.auth, transport=transport),
        )
        with acting_as(actor):
            for resource_type in settings.resource_types:
                _resource_type_pull(
                    source=source,
                    client=client,
                    resource_type=resource_type,
                    since=since_text,
                    summary=summary,
                )
    except PullError as error:
        summary.retries = transport.retries if transport is not None else 0
        error.summary = summary
        logger.warning("pull of source %s stopped: %s", source.slug, error.message)
        raise
    summary.retries = transport.retries
    logger.info(
        "pull of source %s: %s pages, %s resources stored, %s duplicate pages",
        source.slug,
        summary.pages,
        sum(summary.resources_stored.values()),
        summary.duplicates,
    )
    return summary
