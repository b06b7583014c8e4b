"""Bulk re-linking of every record after a rule or weight change, keeping every manual decision.

Splink (DuckDB) finds and scores all blocked pairs at once; the decisions are then taken record by record in
the order the records were stored, with the same rules as online linking (``decisions.decide``), so the
result is what online matching would have built had the new model been active from the start.
"""

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.bulk import rows_update
from patients.matching import decisions
from patients.matching.decisions import Member, ScoredCandidate, decide, pair_vetoes
from patients.matching.features import FEATURES_VERSION, Features
from patients.matching.golden import patients_golden_recompute
from patients.matching.linking import active_weights, record_features, records_features_write
from patients.matching.scoring import DEFAULT_MODEL_PATH, MatchModelWeights, pair_score
from patients.matching.training import pairs_score, records_frame
from patients.models import MatchModel, MatchReview, Patient, PatientLink, SourcePatient

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass
class RelinkResult:
    records: int = 0
    pairs_scored: int = 0
    links_changed: int = 0
    manual_kept: int = 0
    states: Counter[str] = field(default_factory=Counter)
    patients_created: int = 0
    patients_retired: int = 0
    engine_disagreements: int = 0  # pairs Splink and the online scorer weighed differently (should be 0)


@dataclass
class _Record:
    pk: int
    source_id: int
    features: Features
    patient_id: int | None
    origin: str


def _records() -> tuple[list[_Record], list[SourcePatient]]:
    """Every record with its current features; and the records whose stored features and keys are out of
    date (an upgrade changed how features or blocking keys are made), to be written again."""
    rows = SourcePatient.objects.order_by("pk").values_list(
        "pk", "source_id", "match_features", "resource", "link__patient_id", "link__origin"
    )
    found, outdated = [], []
    for pk, source_id, stored, resource, patient_id, origin in rows:
        features = stored
        if not stored or stored.get("version") != FEATURES_VERSION:
            record = SourcePatient(pk=pk, resource=resource, match_features=stored or {})
            features = record.match_features = record_features(record)
            outdated.append(record)
        found.append(_Record(pk, source_id, features, patient_id, origin or PatientLink.Origin.AUTO))
    return found, outdated


def _splink_settings(model: MatchModelWeights) -> dict[str, Any]:
    if model.model_id is not None:
        return dict(MatchModel.objects.get(pk=model.model_id).splink_settings)
    return dict(json.loads(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"))["splink_settings"])


def relink_all(*, model: MatchModelWeights | None = None, progress: Progress | None = None) -> RelinkResult:
    """Re-link every stored record with ``model`` (default: the active one)."""
    model = model or active_weights()
    result = RelinkResult()
    records, outdated = _records()
    if outdated:
        if progress:
            progress("refreshing outdated features and blocking keys", 0, 1)
        records_features_write(outdated)
        if progress:
            progress("refreshing outdated features and blocking keys", 1, 1)
    result.records = len(records)
    by_pk = {record.pk: record for record in records}
    if progress:
        progress("scoring pairs", 0, 1)
    frame = records_frame((record.pk, record.features) for record in records)
    neighbours: dict[int, list[int]] = defaultdict(list)
    splink_weights: dict[tuple[int, int], float] = {}
    for left, right, weight in pairs_score(
        frame,
        settings=_splink_settings(model),
        frequencies=model.term_frequencies,
        threshold_weight=model.review_weight,
    ):
        neighbours[left].append(right)
        neighbours[right].append(left)
        splink_weights[(min(left, right), max(left, right))] = weight
        result.pairs_scored += 1
    if progress:
        progress("scoring pairs", 1, 1)
    rejected: set[tuple[int, int]] = set()  # (record, record) pairs a steward said are different people
    members_of_patient: dict[int, list[int]] = defaultdict(list)
    for record in records:
        if record.patient_id is not None:
            members_of_patient[record.patient_id].append(record.pk)
    for record_id, patient_id in MatchReview.objects.filter(
        status=MatchReview.Status.REJECTED, source_patient__isnull=False
    ).values_list("source_patient_id", "patient_id"):
        for member in members_of_patient.get(patient_id, []):
            rejected.update({(record_id, member), (member, record_id)})

    # Clusters are numbered here; they become golden patients when written.
    cluster_of: dict[int, int] = {}
    cluster_members: dict[int, list[int]] = defaultdict(list)
    manual_cluster: dict[int, int] = {}  # existing patient id -> cluster, for records kept by a steward
    outcomes: dict[int, tuple[decisions.Decision | None, int | None]] = {}

    def cluster_join(record: _Record, cluster: int) -> None:
        cluster_of[record.pk] = cluster
        cluster_members[cluster].append(record.pk)

    next_cluster = 0
    for done, record in enumerate(records, start=1):
        if record.origin == PatientLink.Origin.MANUAL and record.patient_id is not None:
            if record.patient_id not in manual_cluster:
                manual_cluster[record.patient_id] = next_cluster
                next_cluster += 1
            cluster_join(record, manual_cluster[record.patient_id])
            outcomes[record.pk] = (None, None)
            result.manual_kept += 1
            continue
        scored = []
        for other_pk in neighbours.get(record.pk, []):
            if other_pk not in cluster_of or (record.pk, other_pk) in rejected:
                continue  # only records stored before this one, as online
            other = by_pk[other_pk]
            score = pair_score(model, record.features, other.features)
            expected = splink_weights[(min(record.pk, other_pk), max(record.pk, other_pk))]
            if abs(score.match_weight - expected) > 1e-6:
                result.engine_disagreements += 1
            scored.append(
                ScoredCandidate(
                    other_pk, cluster_of[other_pk], score, pair_vetoes(record.features, other.features, score)
                )
            )
        members = {
            cluster: [
                Member(pk, by_pk[pk].source_id, tuple(by_pk[pk].features["identifiers"]))
                for pk in cluster_members[cluster]
                if by_pk[pk].source_id == record.source_id
            ]
            for cluster in {candidate.patient_id for candidate in scored}
        }
        decision = decide(
            model=model,
            record_id=record.pk,
            source_id=record.source_id,
            features=record.features,
            candidates=scored,
            members=members,
        )
        if decision.patient_id is None:
            cluster = next_cluster
            next_cluster += 1
        else:
            cluster = decision.patient_id
        cluster_join(record, cluster)
        outcomes[record.pk] = (decision, cluster)
        result.states[decision.state] += 1
        if progress and done % 10_000 == 0:
            progress("deciding", done, len(records))
    _write(records, cluster_members, cluster_of, outcomes, model=model, result=result, progress=progress)
    return result


def _patients_for_clusters(
    records: list[_Record], cluster_members: dict[int, list[int]]
) -> tuple[dict[int, int | None], dict[int, int]]:
    """Reuse existing golden patients: each goes to the cluster holding most of its records."""
    by_pk = {record.pk: record for record in records}
    claims: list[tuple[int, int, int]] = []  # (-records shared, cluster, patient)
    for cluster, members in cluster_members.items():
        counts = Counter(pk_patient for pk in members if (pk_patient := by_pk[pk].patient_id) is not None)
        claims.extend((-count, cluster, patient) for patient, count in counts.items())
    claims.sort()
    patient_of_cluster: dict[int, int | None] = dict.fromkeys(cluster_members)
    taken: set[int] = set()
    survivor_of_patient: dict[int, int] = {}
    for _, cluster, patient in claims:
        if patient_of_cluster[cluster] is None and patient not in taken:
            patient_of_cluster[cluster] = patient
            taken.add(patient)
    for _, cluster, patient in claims:
        if patient not in taken and patient not in survivor_of_patient:
            survivor_of_patient[patient] = cluster  # its records went there: it resolves to that cluster
    return patient_of_cluster, survivor_of_patient


@transaction.atomic
def _write(
    records: list[_Record],
    cluster_members: dict[int, list[int]],
    cluster_of: dict[int, int],
    outcomes: dict[int, tuple[decisions.Decision | None, int | None]],
    *,
    model: MatchModelWeights,
    result: RelinkResult,
    progress: Progress | None,
) -> None:
    claimed, survivor_of_patient = _patients_for_clusters(records, cluster_members)
    patient_of_cluster: dict[int, int] = {}
    for cluster, existing in claimed.items():
        if existing is None:
            patient_of_cluster[cluster] = Patient.objects.create().pk
            result.patients_created += 1
        else:
            patient_of_cluster[cluster] = existing
    links = {link.source_patient_id: link for link in PatientLink.objects.all()}
    changed_links, new_links = [], []
    touched: set[int] = set()
    for record in records:
        decision, _ = outcomes[record.pk]
        if decision is None:
            continue  # manual: kept as the steward left it
        patient_id = patient_of_cluster[cluster_of[record.pk]]
        best = decision.best
        values = {
            "patient_id": patient_id,
            "state": decision.state,
            "origin": PatientLink.Origin.AUTO,
            "score": best.best.score.probability if best else None,
            "match_weight": best.match_weight if best else None,
            "matched_record_id": best.best.record_id if best else None,
            "comparisons": best.best.score.details if best else {},
            "reason": decision.reason[:300],
            "match_model_id": model.model_id,
        }
        link = links.get(record.pk)
        if link is not None and all(getattr(link, name) == value for name, value in values.items()):
            continue
        if link is None:
            new_links.append(PatientLink(source_patient_id=record.pk, **values))
            touched.add(patient_id)
            result.links_changed += 1
            continue
        if link.patient_id != patient_id or link.state != decision.state:
            touched.update({link.patient_id, patient_id})
            result.links_changed += 1
        for name, value in values.items():
            setattr(link, name, value)
        link.updated_at = timezone.now()
        changed_links.append(link)
    PatientLink.objects.bulk_create(new_links, batch_size=2000)
    rows_update(
        PatientLink,
        changed_links,
        (
            "patient",
            "state",
            "origin",
            "score",
            "match_weight",
            "matched_record",
            "comparisons",
            "reason",
            "match_model",
            "updated_at",
        ),
    )
    for retired, cluster in survivor_of_patient.items():
        Patient.objects.filter(pk=retired).update(merged_into_id=patient_of_cluster[cluster], is_active=False)
        result.patients_retired += 1
    # Possible matches of the previous run are replaced by this run's; possible duplicates between
    # patients stay for the steward (a re-link does not answer them).
    MatchReview.objects.filter(status=MatchReview.Status.OPEN, kind=MatchReview.Kind.POSSIBLE_MATCH).update(
        status=MatchReview.Status.OBSOLETE, decided_at=timezone.now()
    )
    reviews = []
    for record in records:
        decision, _ = outcomes[record.pk]
        if decision is None:
            continue
        for candidate in decision.reviews:
            reviews.append(
                MatchReview(
                    kind=MatchReview.Kind.POSSIBLE_MATCH,
                    source_patient_id=record.pk,
                    patient_id=patient_of_cluster[candidate.patient_id],
                    score=candidate.best.score.probability,
                    match_weight=candidate.match_weight,
                    comparisons=candidate.best.score.details,
                    reason=("; ".join(candidate.vetoes) or decision.reason)[:300],
                )
            )
    MatchReview.objects.bulk_create(reviews, batch_size=2000, ignore_conflicts=True)
    active = list(Patient.objects.filter(pk__in=touched, is_active=True).values_list("pk", flat=True))
    if progress:
        progress("golden records", 0, len(active))
    patients_golden_recompute(active)
    if progress:
        progress("golden records", len(active), len(active))
