"""Landing and processing of inbound payloads.

Landing stores the bytes exactly as they arrived (with their sha256) and commits BEFORE anything
parses them; processing then runs as a Celery task. A payload that cannot be processed is
quarantined with every problem found (where and what) and can be replayed; processing never deletes
a payload. The same bytes from the same source are stored once and processed once.
"""

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.context import acting_as
from patients.ingest.csv_input import csv_payload_parse
from patients.ingest.entries import Entry, ParsedPayload, PayloadRejected, Problem
from patients.ingest.fhir_input import fhir_payload_parse
from patients.ingest.hl7v2 import hl7v2_payload_parse
from patients.ingest.store import StoreResult, entries_store, identifier_lookup
from patients.models import InboundPayload, Source
from patients.normalize import patient_resource_normalize, resource_datetimes_normalize
from patients.terminology import entries_terminology_normalize

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

CONCURRENT_WRITE_RETRIES = 3


@dataclass
class ProcessOutcome:
    payload: InboundPayload
    result: StoreResult = field(default_factory=StoreResult)
    problems: list[Problem] = field(default_factory=list)
    entry_problems: dict[int, list[Problem]] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    bundle_type: str = ""
    already_processed: bool = False

    def payload_problems(self) -> list[Problem]:
        return [Problem(item["location"], item["message"]) for item in self.payload.problems]


def max_payload_bytes() -> int:
    return int(settings.CONCORD_MAX_PAYLOAD_BYTES)


def _over_limit(size: int) -> Problem:
    return Problem("", f"the payload is {size:,} bytes, over the limit of {max_payload_bytes():,}")


def payload_receive(
    *,
    source: Source,
    body: bytes,
    format: str,
    channel: str,
    content_type: str = "",
    origin: str = "",
    options: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> tuple[InboundPayload, bool]:
    """Store a payload as it arrived. Returns (payload, created); a repeat returns the stored one.

    With ``enqueue`` the processing task is queued once the landing has committed.
    """
    digest = hashlib.sha256(body).hexdigest()
    now = timezone.now()
    with transaction.atomic():
        existing = InboundPayload.objects.select_for_update().filter(source=source, sha256=digest).first()
        if existing is not None:
            existing.times_received += 1
            existing.last_received_at = now
            existing.save(update_fields=["times_received", "last_received_at", "updated_at"])
            return existing, False
        payload = InboundPayload(
            source=source,
            received_at=now,
            last_received_at=now,
            channel=channel,
            format=format,
            content_type=content_type[:200],
            origin=origin[:500],
            body=body,
            size=len(body),
            sha256=digest,
            options=options or {},
        )
        if len(body) > max_payload_bytes():
            payload.status = InboundPayload.Status.QUARANTINED
            payload.processed_at = now
            problem = _over_limit(len(body))
            payload.error = str(problem)
            payload.problems = [problem.as_dict()]
            payload.outcome = {"kind": "too-large"}
        try:
            with transaction.atomic():
                payload.save()
        except IntegrityError:
            # The same bytes landed concurrently through another connection: that copy is the payload.
            return InboundPayload.objects.get(source=source, sha256=digest), False
        if enqueue and payload.status == InboundPayload.Status.RECEIVED:
            payload_id = payload.pk
            transaction.on_commit(lambda: _enqueue(payload_id))
    logger.info("payload %s landed for source %s (%s bytes)", payload.pk, source.slug, len(body))
    return payload, True


def _enqueue(payload_id: int) -> None:
    from patients.tasks import process_payload

    process_payload.delay(payload_id)


def _normalized(entries: list[Entry], *, default_timezone: str) -> list[Entry]:
    problems = []
    for entry in entries:
        try:
            if entry.resource_type == "Patient":
                entry.resource = patient_resource_normalize(entry.resource, default_timezone=default_timezone)
            entry.resource = resource_datetimes_normalize(entry.resource, default_timezone=default_timezone)
        except ValueError as error:
            problems.append(Problem(entry.location, f"cannot normalize: {error}"))
    if problems:
        raise PayloadRejected(problems, kind="normalize")
    return entries


def _parse(payload: InboundPayload) -> ParsedPayload:
    body = bytes(payload.body)
    source = payload.source
    if payload.format == InboundPayload.Format.FHIR:
        return fhir_payload_parse(
            body,
            lookup=identifier_lookup(source),
            expected_type=str(payload.options.get("resource_type", "")),
        )
    if payload.format == InboundPayload.Format.CSV:
        if "csv_mapping_error" in payload.options:
            raise PayloadRejected([Problem("mapping", payload.options["csv_mapping_error"])], kind="mapping")
        mapping = payload.options.get("csv_mapping", source.connector_settings.get("csv_mapping"))
        if mapping is None:
            raise PayloadRejected(
                [
                    Problem(
                        "mapping", "no column mapping: give one with --mapping or in the source's settings"
                    )
                ],
                kind="mapping",
            )
        return csv_payload_parse(body, mapping=mapping, source_slug=source.slug)
    if payload.format == InboundPayload.Format.HL7V2:
        return hl7v2_payload_parse(
            body,
            lookup=identifier_lookup(source),
            default_timezone=str(source.connector_settings.get("time_zone") or settings.TIME_ZONE),
        )
    raise PayloadRejected([Problem("", f"format {payload.format!r} is not supported yet")], kind="format")


def _quarantine(payload: InboundPayload, problems: list[Problem], *, outcome: dict[str, Any]) -> None:
    payload.status = InboundPayload.Status.QUARANTINED
    payload.error = str(problems[0]) if problems else "unknown problem"
    payload.problems = [problem.as_dict() for problem in problems]
    payload.outcome = outcome
    payload.processed_at = timezone.now()
    payload.save(
        update_fields=["status", "error", "problems", "outcome", "processed_at", "attempts", "updated_at"]
    )


def _outcome_json(result: StoreResult, *, with_entries: bool) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "stored": result.stored_by_type(),
        "created": dict(result.created),
        "updated": dict(result.updated),
        "unchanged": dict(result.unchanged),
    }
    if with_entries:
        outcome["entries"] = {location: list(answer) for location, answer in result.entry_results.items()}
    return outcome


def _process_once(payload_id: int) -> ProcessOutcome:
    with transaction.atomic():
        # Lock the payload row only: locking the joined source row too would serialize all of a source's work.
        payload = (
            InboundPayload.objects.select_for_update(of=("self",))
            .select_related("source")
            .defer(None)  # with its body, which the manager leaves out
            .get(pk=payload_id)
        )
        if payload.status == InboundPayload.Status.ACCEPTED:
            return ProcessOutcome(payload=payload, already_processed=True)
        if payload.size > max_payload_bytes():
            problem = _over_limit(payload.size)
            if payload.status != InboundPayload.Status.QUARANTINED:
                _quarantine(payload, [problem], outcome={"kind": "too-large"})
            return ProcessOutcome(payload=payload, problems=[problem])
        payload.attempts += 1
        timezone_name = str(payload.source.connector_settings.get("time_zone") or settings.TIME_ZONE)
        try:
            with transaction.atomic():
                parsed = _parse(payload)
                entries = _normalized(parsed.entries, default_timezone=timezone_name)
                entries = entries_terminology_normalize(entries, source=payload.source)
                result = entries_store(source=payload.source, payload=payload, entries=entries)
        except PayloadRejected as rejected:
            _quarantine(payload, rejected.problems, outcome={"kind": rejected.kind})
            return ProcessOutcome(payload=payload, problems=rejected.problems)
        except IntegrityError:
            raise  # another worker wrote the same record at the same time: retry the whole payload
        except Exception as error:  # a defect must not lose the payload: quarantine it, replay after a fix
            logger.exception("payload %s failed with an internal error", payload.pk)
            problem = Problem(
                "", f"internal error while processing ({type(error).__name__}); replay after a fix"
            )
            _quarantine(payload, [problem], outcome={"kind": "internal"})
            return ProcessOutcome(payload=payload, problems=[problem])

        outcome = _outcome_json(result, with_entries=payload.format == InboundPayload.Format.FHIR)
        if payload.format == InboundPayload.Format.FHIR:
            outcome["bundle_type"] = parsed.bundle_type
            outcome["entry_count"] = parsed.entry_count
            outcome["entry_problems"] = {
                str(index): [problem.as_dict() for problem in found]
                for index, found in parsed.entry_problems.items()
            }
        if parsed.entry_problems:  # a batch: the valid entries are stored, the others wait in quarantine
            problems = [problem for found in parsed.entry_problems.values() for problem in found]
            _quarantine(payload, problems, outcome={**outcome, "kind": "batch-entries"})
        else:
            payload.status = InboundPayload.Status.ACCEPTED
            payload.error = ""
            payload.problems = []
            payload.outcome = outcome
            payload.processed_at = timezone.now()
            payload.save(
                update_fields=[
                    "status",
                    "error",
                    "problems",
                    "outcome",
                    "processed_at",
                    "attempts",
                    "updated_at",
                ]
            )
        return ProcessOutcome(
            payload=payload,
            result=result,
            entry_problems=parsed.entry_problems,
            entries=parsed.entries,
            bundle_type=parsed.bundle_type,
        )


def payload_process(*, payload_id: int) -> ProcessOutcome:
    """Parse, validate, normalize and store one landed payload; quarantine it on any problem."""
    for attempt in range(1, CONCURRENT_WRITE_RETRIES + 1):
        try:
            return _process_once(payload_id)
        except IntegrityError:
            logger.info("payload %s: concurrent write of the same records, attempt %s", payload_id, attempt)
            if attempt == CONCURRENT_WRITE_RETRIES:
                payload = InboundPayload.objects.get(pk=payload_id)
                problem = Problem("", "conflicting concurrent writes of the same records; replay it")
                _quarantine(payload, [problem], outcome={"kind": "conflict"})
                return ProcessOutcome(payload=payload, problems=[problem])
    raise AssertionError("unreachable")


@transaction.atomic
def payload_hold(*, payload: InboundPayload, problem: Problem, kind: str) -> InboundPayload:
    """Quarantine a landed payload without processing it (e.g. a test message sent to production).

    It is kept like every payload; a steward may still replay it deliberately.
    """
    payload = InboundPayload.objects.select_for_update().get(pk=payload.pk)
    if payload.status == InboundPayload.Status.RECEIVED:
        _quarantine(payload, [problem], outcome={"kind": kind})
    return payload


@transaction.atomic
def payload_replay(
    *, actor: "User | None", payload: InboundPayload, options: dict[str, Any] | None = None
) -> InboundPayload:
    """Send a quarantined payload through processing again (after a fix), optionally with new options.

    The change of status is attributed to ``actor`` in the audit log (django-auditlog).
    """
    payload = InboundPayload.objects.select_for_update().get(pk=payload.pk)
    if payload.status == InboundPayload.Status.ACCEPTED:
        return payload
    if payload.size > max_payload_bytes():
        return payload  # still over the limit: raise the limit first
    if options is not None:
        payload.options = {**payload.options, **options}
        if "csv_mapping" in options:
            payload.options.pop("csv_mapping_error", None)
    payload.status = InboundPayload.Status.RECEIVED
    with acting_as(actor):
        payload.save(update_fields=["status", "options", "updated_at"])
    payload_id = payload.pk
    transaction.on_commit(lambda: _enqueue(payload_id))
    return payload
