"""Writes on the patient index: training, steward decisions, merge and unmerge of golden patients."""

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.context import acting_as
from core.errors import ApplicationError
from patients.matching import decisions
from patients.matching.golden import patient_golden_recompute
from patients.matching.linking import record_features
from patients.models import MatchModel, MatchReview, Patient, PatientLink, PatientMerge, SourcePatient

logger = logging.getLogger(__name__)


def match_model_train(
    *,
    actor: User | None,
    auto_match_probability: float | None = None,
    review_probability: float | None = None,
    max_pairs: float = 2e6,
) -> MatchModel:
    """Fit Fellegi-Sunter weights on every stored record with Splink and make them the active model."""
    records = [
        (pk, record_features(SourcePatient(pk=pk, resource=resource, match_features=features or {})))
        for pk, resource, features in SourcePatient.objects.order_by("pk").values_list(
            "pk", "resource", "match_features"
        )
    ]
    if len(records) < 2:
        raise ApplicationError("Training needs at least two stored patient records.")
    # Checked before training: a fit takes minutes on a large index.
    previous = MatchModel.objects.filter(is_active=True).first()
    auto = auto_match_probability or (previous.auto_match_probability if previous else 0.99)
    review = review_probability or (previous.review_probability if previous else 0.5)
    if not 0 < review < auto < 1:
        raise ApplicationError("Thresholds must satisfy 0 < review < automatic match < 1.")
    # Imported here: Splink and pandas take 0.4 s to import, and every process loads this module (the
    # admin does), while only training needs them.
    from splink.internals.exceptions import SplinkException

    from patients.matching.training import model_train, records_frame, term_frequencies

    frame = records_frame(records)
    try:
        settings = model_train(frame, max_pairs=max_pairs)
    except SplinkException as error:  # e.g. too few records for EM to learn from
        raise ApplicationError(f"Training failed: {str(error).splitlines()[0]}") from error
    with transaction.atomic(), acting_as(actor):
        MatchModel.objects.filter(is_active=True).update(is_active=False)
        model = MatchModel.objects.create(
            is_active=True,
            splink_settings=settings,
            term_frequencies=term_frequencies(frame),
            auto_match_probability=auto,
            review_probability=review,
            record_count=len(records),
            summary={
                "records": len(records),
                "max_pairs": max_pairs,
                "prior": settings["probability_two_random_records_match"],
                "trained_by": actor.get_username() if actor else "",
            },
        )
    logger.info("match model %s trained on %s records", model.pk, len(records))
    return model


def _link_set(link: PatientLink, *, patient: Patient, state: str, actor: User | None, reason: str) -> None:
    link.patient = patient
    link.state = state
    link.origin = PatientLink.Origin.MANUAL
    link.decided_by = actor
    link.reason = reason[:300]
    link.full_clean()
    link.save()


@transaction.atomic
def match_review_decide(
    *, actor: User | None, review: MatchReview, same_person: bool, reason: str = ""
) -> MatchReview:
    """A steward's answer to a possible match: link the record to the candidate, or keep them apart.

    Either way the record's link becomes MANUAL, which automatic linking never changes.
    """
    review = MatchReview.objects.select_for_update().get(pk=review.pk)
    if review.status != MatchReview.Status.OPEN:
        raise ApplicationError("This review is already decided.")
    if review.kind == MatchReview.Kind.POSSIBLE_DUPLICATE:
        if same_person and review.other_patient is not None:
            patient_merge(
                actor=actor,
                survivor=review.patient,
                duplicate=review.other_patient,
                reason=reason or "steward: same person",
            )
    elif review.source_patient is not None:
        link = PatientLink.objects.select_for_update().get(source_patient=review.source_patient)
        touched = {link.patient_id, review.patient_id}
        with acting_as(actor):
            if same_person:
                previous = link.patient
                _link_set(
                    link,
                    patient=review.patient,
                    state=decisions.MATCH,
                    actor=actor,
                    reason=reason or "steward: same person",
                )
                if not previous.links.exists():
                    Patient.objects.filter(pk=previous.pk).update(merged_into=review.patient, is_active=False)
            else:
                _link_set(
                    link,
                    patient=link.patient,
                    state=decisions.NO_MATCH,
                    actor=actor,
                    reason=reason or "steward: different people",
                )
        for patient in Patient.objects.filter(pk__in=touched, is_active=True):
            patient_golden_recompute(patient)
    review.status = MatchReview.Status.CONFIRMED if same_person else MatchReview.Status.REJECTED
    review.decided_by = actor
    review.decided_at = timezone.now()
    with acting_as(actor):
        review.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
    return review


def patient_resolve(patient: Patient) -> Patient:
    """Follow merges: a merged-away patient resolves to the patient that survived it."""
    seen = {patient.pk}
    while patient.merged_into_id is not None:
        patient = Patient.objects.get(pk=patient.merged_into_id)
        if patient.pk in seen:
            raise ApplicationError("merge cycle")
        seen.add(patient.pk)
    return patient


@transaction.atomic
def patient_merge(*, actor: User | None, survivor: Patient, duplicate: Patient, reason: str) -> PatientMerge:
    """Move every link of ``duplicate`` to ``survivor``; ``duplicate`` then resolves to ``survivor``."""
    if not reason.strip():
        raise ApplicationError("A merge needs a reason.")
    survivor = Patient.objects.select_for_update().get(pk=patient_resolve(survivor).pk)
    duplicate = Patient.objects.select_for_update().get(pk=duplicate.pk)
    if duplicate.merged_into_id is not None or not duplicate.is_active:
        raise ApplicationError("That patient was already merged into another one.")
    if survivor.pk == duplicate.pk:
        raise ApplicationError("A patient cannot be merged into itself.")
    links = list(PatientLink.objects.select_for_update().filter(patient=duplicate))
    previous: dict[str, Any] = {
        str(link.pk): {
            "state": link.state,
            "origin": link.origin,
            "reason": link.reason,
            "decided_by": link.decided_by_id,
        }
        for link in links
    }
    with acting_as(actor):
        merge = PatientMerge.objects.create(
            survivor=survivor,
            duplicate=duplicate,
            moved_links=[link.pk for link in links],
            previous_links=previous,
            reason=reason[:300],
            actor=actor,
        )
        for link in links:
            _link_set(link, patient=survivor, state=decisions.MATCH, actor=actor, reason=f"merge: {reason}")
        duplicate.merged_into = survivor
        duplicate.is_active = False
        duplicate.save(update_fields=["merged_into", "is_active", "updated_at"])
    MatchReview.objects.filter(
        status=MatchReview.Status.OPEN, patient=duplicate, other_patient=survivor
    ).update(status=MatchReview.Status.CONFIRMED, decided_by=actor, decided_at=timezone.now())
    patient_golden_recompute(survivor)
    return merge


@transaction.atomic
def patient_unmerge(*, actor: User | None, merge: PatientMerge, reason: str) -> Patient:
    """Undo a merge: exactly the links it moved go back, with the state and origin they had before."""
    if not reason.strip():
        raise ApplicationError("An unmerge needs a reason.")
    merge = PatientMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.unmerged_at is not None:
        raise ApplicationError("This merge was already undone.")
    later = PatientMerge.objects.filter(
        duplicate=merge.survivor, unmerged_at__isnull=True, created_at__gt=merge.created_at
    )
    if later.exists():
        raise ApplicationError("The survivor was merged again since: undo that merge first.")
    duplicate = Patient.objects.select_for_update().get(pk=merge.duplicate_id)
    survivor = Patient.objects.select_for_update().get(pk=merge.survivor_id)
    with acting_as(actor):
        for link in PatientLink.objects.select_for_update().filter(
            pk__in=merge.moved_links, patient=survivor
        ):
            before = merge.previous_links.get(str(link.pk), {})
            link.patient = duplicate
            link.state = before.get("state", link.state)
            link.origin = before.get("origin", link.origin)
            link.reason = before.get("reason", link.reason)
            link.decided_by_id = before.get("decided_by")
            link.save()
        duplicate.merged_into = None
        duplicate.is_active = True
        duplicate.save(update_fields=["merged_into", "is_active", "updated_at"])
        merge.unmerged_at = timezone.now()
        merge.unmerged_by = actor
        merge.unmerge_reason = reason[:300]
        merge.save(update_fields=["unmerged_at", "unmerged_by", "unmerge_reason", "updated_at"])
    patient_golden_recompute(survivor)
    patient_golden_recompute(duplicate)
    return duplicate
