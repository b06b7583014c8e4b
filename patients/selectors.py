"""Reads of source systems, their payloads and golden patients, for the pages and the APIs."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery

from patients.matching.features import patient_features
from patients.matching.linking import MatchResult, patients_match
from patients.models import InboundPayload, Patient, Source, SourcePatient, SourceResource
from patients.normalize import patient_resource_normalize


def source_for_token(token: str) -> Source | None:
    """The active source an API token belongs to, or None."""
    if not token:
        return None
    return Source.objects.filter(api_token_sha256=Source.token_digest(token), is_active=True).first()


@dataclass(frozen=True)
class SourceStatus:
    source: Source
    last_received_at: datetime | None
    payloads: int
    accepted: int
    quarantined: int
    patients: int
    resources: int
    last_error: str
    last_error_at: datetime | None


def source_status_list() -> list[SourceStatus]:
    """Every source with its ingestion figures: a few aggregate queries, whatever the number of sources."""
    latest_quarantined = InboundPayload.objects.filter(
        source=OuterRef("pk"), status=InboundPayload.Status.QUARANTINED
    ).order_by("-processed_at")
    sources = Source.objects.annotate(
        last_received=Max("payloads__last_received_at"),
        payload_count=Count("payloads"),
        accepted_count=Count("payloads", filter=Q(payloads__status=InboundPayload.Status.ACCEPTED)),
        quarantined_count=Count("payloads", filter=Q(payloads__status=InboundPayload.Status.QUARANTINED)),
        last_error=Subquery(latest_quarantined.values("error")[:1]),
        last_error_at=Subquery(latest_quarantined.values("processed_at")[:1]),
    ).order_by("name")
    patients = dict(Source.objects.annotate(n=Count("patients")).values_list("pk", "n"))
    resources = dict(Source.objects.annotate(n=Count("resources")).values_list("pk", "n"))
    return [
        SourceStatus(
            source=source,
            last_received_at=source.last_received,
            payloads=source.payload_count,
            accepted=source.accepted_count,
            quarantined=source.quarantined_count,
            patients=patients.get(source.pk, 0),
            resources=resources.get(source.pk, 0),
            last_error=source.last_error or "",
            last_error_at=source.last_error_at,
        )
        for source in sources
    ]


def payload_list(*, source: Source | None = None, status: str = "") -> QuerySet[InboundPayload]:
    """Payload metadata, newest first; the body (PHI) is deferred and never listed."""
    payloads = InboundPayload.objects.select_related("source").defer("body")
    if source is not None:
        payloads = payloads.filter(source=source)
    if status:
        payloads = payloads.filter(status=status)
    return payloads.order_by("-received_at")


def stored_resource_get(
    *, source: Source, resource_type: str, source_record_id: str
) -> dict[str, Any] | None:
    """The current stored JSON of one source record, or None."""
    if resource_type == "Patient":
        patients = SourcePatient.objects.filter(source=source, source_record_id=source_record_id)
        return patients.values_list("resource", flat=True).first()
    resources = SourceResource.objects.filter(
        source=source, resource_type=resource_type, source_record_id=source_record_id
    )
    return resources.values_list("resource", flat=True).first()


def golden_patient_get(*, user: Any, external_id: Any) -> Patient | None:
    """The golden patient with this id, following merges to the survivor; None when missing or not allowed.

    Missing and forbidden answer alike, so that ids cannot be probed.
    """
    if not user.has_perm("patients.view_patient"):
        return None
    patient = Patient.objects.filter(external_id=external_id).first()
    seen = set()
    while patient is not None and patient.merged_into_id is not None and patient.pk not in seen:
        seen.add(patient.pk)
        patient = Patient.objects.filter(pk=patient.merged_into_id).first()
    return patient


def golden_patient_replaced_ids(patient: Patient) -> list[str]:
    """External ids of the patients merged into this one (they resolve here)."""
    return [str(value) for value in patient.merged_from.order_by("pk").values_list("external_id", flat=True)]


def golden_patients_match(*, user: Any, resource: dict[str, Any]) -> list[tuple[Patient, MatchResult]]:
    """Golden patients a FHIR Patient description may be (the $match operation), best first."""
    if not (user.has_perm("patients.match_patient") and user.has_perm("patients.view_patient")):
        return []
    features = patient_features(patient_resource_normalize(resource))
    results = patients_match(features)
    patients = Patient.objects.in_bulk([result.patient_id for result in results])
    return [(patients[result.patient_id], result) for result in results if result.patient_id in patients]
