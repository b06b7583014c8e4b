"""Online linking: each new or changed source record is matched as it is stored, in the same transaction.

Candidate search uses the blocking keys in the database (``MatchKey``), scoring the active model
(``scoring``), the decision the shared rules (``decisions``). Records of one payload are linked one after
the other, so a person arriving twice in one payload ends up once.
"""

import json
import logging
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models.fields.json import KeyTransform

from core.bulk import rows_update
from patients.matching import decisions
from patients.matching.decisions import Decision, Member, ScoredCandidate, decide, pair_vetoes
from patients.matching.features import FEATURES_VERSION, Features, blocking_keys, patient_features
from patients.matching.golden import patients_golden_recompute
from patients.matching.scoring import (
    MatchModelWeights,
    ModelMismatch,
    default_weights,
    pair_score,
    weights_from_settings,
)
from patients.models import MatchKey, MatchModel, MatchReview, Patient, PatientLink, SourcePatient

logger = logging.getLogger(__name__)

# The records sharing the most blocking keys with a new record are scored, at most this many: a true
# match shares several keys (name, birth date, phone, address, ...), while a common name alone brings
# thousands of records that share that one key and nothing else.
MAX_CANDIDATES = 50
# Of one key, at most this many records are counted: a key as common as "John Smith" is weak evidence,
# and the records that share rarer keys as well rank first anyway.
KEY_RECORDS_COUNTED = 250
_model_cache: dict[int, MatchModelWeights] = {}


def active_weights() -> MatchModelWeights:
    """The active trained model's weights (cached per model), or the shipped default model."""
    found = MatchModel.objects.filter(is_active=True).values_list("pk", flat=True).first()
    if found is None:
        return default_weights()
    if found not in _model_cache:
        model = MatchModel.objects.get(pk=found)
        try:
            _model_cache[found] = weights_from_settings(
                model.splink_settings,
                term_frequencies=model.term_frequencies,
                model_id=model.pk,
                auto_match_probability=model.auto_match_probability,
                review_probability=model.review_probability,
            )
        except ModelMismatch:
            # Comparisons changed with an upgrade: keep linking with the shipped model until retrained.
            logger.error("match model %s no longer fits the comparisons: run mpi_train", found)
            _model_cache[found] = default_weights()
    return _model_cache[found]


def resource_match_features(resource: dict[str, object]) -> Features:
    """The features a record with this Patient resource is matched on (stored as its ``match_features``)."""
    return {**patient_features(resource), "version": FEATURES_VERSION}


def record_features(record: SourcePatient, *, fresh: bool = False) -> Features:
    """The record's stored features, recomputed when asked (the record changed) or when they are outdated."""
    features = record.match_features
    if fresh or features.get("version") != FEATURES_VERSION:
        features = resource_match_features(record.resource)
    return features


def records_features_write(records: Sequence[SourcePatient]) -> None:
    """Store the records' ``match_features`` and write their blocking keys again (bulk: a re-link after an
    upgrade rewrites every record's)."""
    rows_update(SourcePatient, records, ["match_features"])
    for start in range(0, len(records), 5000):
        batch = records[start : start + 5000]
        MatchKey.objects.filter(source_patient_id__in=[record.pk for record in batch]).delete()
        MatchKey.objects.bulk_create(
            (
                MatchKey(source_patient_id=record.pk, key=key)
                for record in batch
                for key in blocking_keys(record.match_features)
            ),
            batch_size=5000,
        )


# Advisory locks are taken on buckets of keys: a CSV export of thousands of patients must not need
# thousands of locks (PostgreSQL's lock table is small); two unrelated keys sharing a bucket only wait.
LOCK_BUCKETS = 256
_LOCK_NAMESPACE = 0x4D5049  # "MPI": keeps these advisory locks apart from any other use


def _keys_lock(keys: Iterable[str]) -> None:
    """Serialize concurrent linking of records that could match each other (PostgreSQL only).

    Two workers storing the same person at once would otherwise each miss the other's uncommitted record
    and create two golden patients. Locks are taken in one sorted pass, so they cannot deadlock.
    """
    if connection.vendor != "postgresql":
        return
    buckets = sorted({zlib.crc32(key.encode()) % LOCK_BUCKETS for key in keys})
    if not buckets:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, bucket) FROM unnest(%s::int[]) AS bucket ORDER BY bucket",
            [_LOCK_NAMESPACE, buckets],
        )


@dataclass
class LinkOutcome:
    linked: int = 0
    matched: int = 0
    possible: int = 0
    new_patients: int = 0


def _members(patient_ids: Sequence[int], *, source_id: int) -> dict[int, list[Member]]:
    members: dict[int, list[Member]] = {}
    if not patient_ids:
        return members
    rows = SourcePatient.objects.filter(link__patient_id__in=patient_ids, source_id=source_id).values_list(
        "pk", "link__patient_id", KeyTransform("identifiers", "match_features")
    )
    for record_id, patient_id, identifiers in rows:
        members.setdefault(patient_id, []).append(Member(record_id, source_id, tuple(identifiers or [])))
    return members


def decision_members(
    *, model: MatchModelWeights, scored: list[ScoredCandidate], source_id: int, features: Features
) -> dict[int, list[Member]]:
    """What the same-source rule needs: the records of this source already linked to the candidate
    patients that could be linked or sent to review (a patient below the review weight can be neither)."""
    if not features["identifiers"]:
        return {}
    patient_ids = sorted(
        {candidate.patient_id for candidate in scored if candidate.score.match_weight >= model.review_weight}
    )
    return _members(patient_ids, source_id=source_id)


def _candidates_fetch(keys: list[str], *, record_id: int | None) -> list[tuple[int, Features, int]]:
    """(record, features, patient) of up to MAX_CANDIDATES linked records, those sharing the most of
    ``keys`` first (ties: the oldest first), in one statement."""
    if not keys:
        return []
    key_table, record_table = MatchKey._meta.db_table, SourcePatient._meta.db_table
    link_table = PatientLink._meta.db_table
    wanted = sorted(set(keys))
    if connection.vendor == "postgresql":
        found_sql = f"""
            SELECT shared.source_patient_id, count(*) AS keys_shared
              FROM unnest(%s::text[]) AS wanted(key)
             CROSS JOIN LATERAL (
                   SELECT m.source_patient_id FROM {key_table} m
                    WHERE m.key = wanted.key AND m.source_patient_id IS DISTINCT FROM %s::bigint
                    LIMIT %s
                   ) AS shared
             GROUP BY shared.source_patient_id
             ORDER BY count(*) DESC, shared.source_patient_id
             LIMIT %s
        """  # noqa: S608 (the table names come from the models)
        found_params: list[Any] = [wanted, record_id, KEY_RECORDS_COUNTED, MAX_CANDIDATES]
    else:  # the embedded SQLite has neither arrays nor LATERAL: one arm per key
        arm = (
            f"SELECT * FROM (SELECT m.source_patient_id FROM {key_table} m "  # noqa: S608
            "WHERE m.key = %s AND m.source_patient_id IS NOT %s LIMIT %s)"
        )
        found_sql = f"""
            SELECT shared.source_patient_id, count(*) AS keys_shared
              FROM ({" UNION ALL ".join(arm for _ in wanted)}) AS shared
             GROUP BY shared.source_patient_id
             ORDER BY count(*) DESC, shared.source_patient_id
             LIMIT %s
        """  # noqa: S608
        found_params = [value for key in wanted for value in (key, record_id, KEY_RECORDS_COUNTED)]
        found_params.append(MAX_CANDIDATES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH found AS ({found_sql})
            SELECT r.id, r.match_features, l.patient_id
              FROM found
              JOIN {record_table} r ON r.id = found.source_patient_id
              JOIN {link_table} l ON l.source_patient_id = found.source_patient_id
             ORDER BY found.keys_shared DESC, found.source_patient_id
            """,  # noqa: S608 (the table names come from the models)
            found_params,
        )
        rows = cursor.fetchall()
    # Django's PostgreSQL backend hands jsonb over as text (JSONField decodes it): so does this cursor.
    return [(candidate_id, json.loads(value), patient_id) for candidate_id, value, patient_id in rows]


def candidates_score(
    *, model: MatchModelWeights, record_id: int | None, features: Features, keys: list[str]
) -> list[ScoredCandidate]:
    """The linked records sharing the most blocking keys with ``features``, scored against it."""
    scored = []
    for candidate_id, candidate_features, patient_id in _candidates_fetch(keys, record_id=record_id):
        score = pair_score(model, features, candidate_features)
        scored.append(
            ScoredCandidate(candidate_id, patient_id, score, pair_vetoes(features, candidate_features, score))
        )
    return scored


def _reviews_open(
    record: SourcePatient, decision: Decision, *, own_patient_id: int | None, created: bool
) -> None:
    """Open the reviews the decision asks for; a record created in this transaction has none yet."""
    open_review = _ReviewsCreate() if created else MatchReview.objects.get_or_create
    for candidate in decision.reviews:
        if candidate.patient_id == own_patient_id:
            continue  # a changed record that still half-matches its own patient stays there
        open_review(
            kind=MatchReview.Kind.POSSIBLE_MATCH,
            source_patient=record,
            patient_id=candidate.patient_id,
            status=MatchReview.Status.OPEN,
            defaults={
                "score": candidate.best.score.probability,
                "match_weight": candidate.match_weight,
                "comparisons": candidate.best.score.details,
                "reason": "; ".join(candidate.vetoes) or decision.reason,
            },
        )
    duplicates = decision.possible_duplicates
    for index, first in enumerate(duplicates):
        for second in duplicates[index + 1 :]:
            low, high = sorted((first, second))
            open_review(
                kind=MatchReview.Kind.POSSIBLE_DUPLICATE,
                source_patient=record,
                patient_id=low,
                status=MatchReview.Status.OPEN,
                defaults={"other_patient_id": high, "reason": f"record {record.pk} matches both"},
            )


class _ReviewsCreate:
    """``get_or_create`` for a record that had no review before this call: one INSERT per review
    (audited like any save), and a review asked for twice (a record matching three patients pairs the
    lowest with both others) is the one made first, as ``get_or_create`` would find it."""

    def __init__(self) -> None:
        self.made: dict[tuple[tuple[str, object], ...], MatchReview] = {}

    def __call__(self, *, defaults: dict[str, object], **fields: object) -> tuple[MatchReview, bool]:
        key = tuple(sorted(fields.items()))
        if key in self.made:
            return self.made[key], False
        self.made[key] = MatchReview.objects.create(**fields, **defaults)
        return self.made[key], True


def _link_fields(decision: Decision, *, model: MatchModelWeights) -> dict[str, object]:
    best = decision.best
    return {
        "state": decision.state,
        "origin": PatientLink.Origin.AUTO,
        "score": best.best.score.probability if best else None,
        "match_weight": best.match_weight if best else None,
        "matched_record_id": best.best.record_id if best else None,
        "comparisons": best.best.score.details if best else {},
        "reason": decision.reason[:300],
        "match_model_id": model.model_id,
    }


def record_link(
    record: SourcePatient,
    *,
    features: Features,
    model: MatchModelWeights,
    touched: set[int],
    created: bool = False,
) -> Decision | None:
    """Match one stored record and link it; add the golden patients whose record changed to ``touched``.

    ``created``: the record was inserted in this transaction, so it has no link, keys or reviews yet and
    nothing needs to be read or deleted for them.
    """
    keys = blocking_keys(features)
    if record.match_features != features:
        record.match_features = features
        SourcePatient.objects.filter(pk=record.pk).update(match_features=features)
    if not created:
        MatchKey.objects.filter(source_patient=record).delete()
    MatchKey.objects.bulk_create(MatchKey(source_patient=record, key=key) for key in keys)
    link = None if created else PatientLink.objects.filter(source_patient=record).first()
    if link is not None and link.origin == PatientLink.Origin.MANUAL:
        touched.add(link.patient_id)  # a steward's decision stands; only the golden record changes
        return None
    scored = candidates_score(model=model, record_id=record.pk, features=features, keys=keys)
    rejected = (
        frozenset()
        if created
        else frozenset(
            MatchReview.objects.filter(source_patient=record, status=MatchReview.Status.REJECTED).values_list(
                "patient_id", flat=True
            )
        )
    )
    decision = decide(
        model=model,
        record_id=record.pk,
        source_id=record.source_id,
        features=features,
        candidates=scored,
        members=decision_members(model=model, scored=scored, source_id=record.source_id, features=features),
        rejected_patients=rejected,
    )
    fields = _link_fields(decision, model=model)
    if link is None:
        patient_id = decision.patient_id or Patient.objects.create().pk
        link = PatientLink.objects.create(source_patient=record, patient_id=patient_id, **fields)
        touched.add(patient_id)
    else:
        touched.add(link.patient_id)
        own_patient_only = decision.patient_id in (None, link.patient_id)
        if decision.state != decisions.MATCH and not own_patient_only:
            raise AssertionError("unreachable: only MATCH names another patient")
        if decision.patient_id not in (None, link.patient_id):
            previous = link.patient_id
            link.patient_id = decision.patient_id
            touched.add(decision.patient_id)
            _patient_retire_if_empty(previous, survivor_id=decision.patient_id, exclude_link=link.pk)
        elif (
            decision.patient_id is None and not _alone(link) and not _still_belongs(decision, link.patient_id)
        ):
            # The record changed so much that its patient's other records no longer match it: it leaves,
            # rather than keep another person's record on its chart.
            fresh = Patient.objects.create()
            link.patient_id = fresh.pk
            touched.add(fresh.pk)
        for name, value in fields.items():
            setattr(link, name, value)
        link.save()
    _reviews_open(record, decision, own_patient_id=link.patient_id, created=created)
    return decision


def _still_belongs(decision: Decision, patient_id: int) -> bool:
    """Some record of ``patient_id`` still scores at least in the review band against the changed record."""
    candidates = [decision.best, *decision.reviews] if decision.best else decision.reviews
    return any(candidate.patient_id == patient_id for candidate in candidates if candidate is not None) and (
        decision.state != decisions.NO_MATCH
    )


def _alone(link: PatientLink) -> bool:
    return not PatientLink.objects.filter(patient_id=link.patient_id).exclude(pk=link.pk).exists()


def _patient_retire_if_empty(patient_id: int, *, survivor_id: int, exclude_link: int | None = None) -> None:
    """A golden patient left without records resolves to where its records went."""
    remaining = PatientLink.objects.filter(patient_id=patient_id)
    if exclude_link is not None:
        remaining = remaining.exclude(pk=exclude_link)
    if not remaining.exists():
        Patient.objects.filter(pk=patient_id).update(merged_into_id=survivor_id, is_active=False)


def _source_merges_apply(records: Sequence[SourcePatient], touched: set[int]) -> None:
    """Honour a source's own merge: a record replaced by another (HL7 A40, Patient.link) joins its patient."""
    for record in records:
        for item in record.resource.get("link") or []:
            if not isinstance(item, dict) or item.get("type") != "replaced-by":
                continue
            reference = str((item.get("other") or {}).get("reference") or "")
            if not reference.startswith("Patient/"):
                continue
            survivor = (
                SourcePatient.objects.filter(source_id=record.source_id, source_record_id=reference[8:])
                .select_related("link")
                .first()
            )
            link = PatientLink.objects.filter(source_patient=record).first()
            if survivor is None or link is None or not hasattr(survivor, "link"):
                continue
            target = survivor.link.patient_id
            if link.patient_id == target or link.origin == PatientLink.Origin.MANUAL:
                continue
            previous = link.patient_id
            link.patient_id = target
            link.state = decisions.MATCH
            link.reason = f"merged by the source into {reference}"
            link.matched_record = survivor
            link.save()
            touched.update({previous, target})
            _patient_retire_if_empty(previous, survivor_id=target)


def source_patients_link(
    records: Sequence[SourcePatient],
    *,
    model: MatchModelWeights | None = None,
    created: Collection[int] = (),
) -> LinkOutcome:
    """Link stored records (new or changed) and recompute the golden records they touch.

    ``created``: the ids of those records inserted in the caller's transaction (see ``record_link``).
    """
    outcome = LinkOutcome()
    if not records:
        return outcome
    model = model or active_weights()
    # These records are new or changed: their stored features (if any) may describe the previous version,
    # except for the ones created here, which were written with their features.
    features = {record.pk: record_features(record, fresh=record.pk not in created) for record in records}
    _keys_lock(key for found in features.values() for key in blocking_keys(found))
    touched: set[int] = set()
    for record in records:
        decision = record_link(
            record, features=features[record.pk], model=model, touched=touched, created=record.pk in created
        )
        outcome.linked += 1
        if decision is not None:
            outcome.matched += decision.state == decisions.MATCH and decision.patient_id is not None
            outcome.possible += decision.state == decisions.POSSIBLE_MATCH
            outcome.new_patients += decision.patient_id is None
    _source_merges_apply(records, touched)
    patients_recompute(touched)
    return outcome


def patients_recompute(patient_ids: Iterable[int]) -> None:
    patients_golden_recompute(patient_ids, active_only=True)


@dataclass(frozen=True)
class MatchResult:
    patient_id: int
    probability: float
    grade: str  # FHIR match-grade: certain, probable, possible
    details: dict[str, dict[str, object]]


# Below this probability a candidate is not worth showing to a $match client.
POSSIBLE_PROBABILITY = 0.05


def patients_match(features: Features, *, model: MatchModelWeights | None = None) -> list[MatchResult]:
    """Golden patients a (not stored) patient description may be, best first, graded as $match grades them."""
    model = model or active_weights()
    scored = candidates_score(model=model, record_id=None, features=features, keys=blocking_keys(features))
    best: dict[int, ScoredCandidate] = {}
    automatic: set[int] = set()
    for candidate in scored:
        current = best.get(candidate.patient_id)
        if current is None or candidate.score.match_weight > current.score.match_weight:
            best[candidate.patient_id] = candidate
        if not candidate.vetoes and candidate.score.match_weight >= model.auto_match_weight:
            automatic.add(candidate.patient_id)
    results = []
    for patient_id, candidate in best.items():
        probability = candidate.score.probability
        if patient_id in automatic:
            grade = "certain"
        elif probability >= model.review_probability:
            grade = "probable"
        elif probability >= POSSIBLE_PROBABILITY:
            grade = "possible"
        else:
            continue
        results.append(MatchResult(patient_id, probability, grade, candidate.score.details))
    # Several "certain" patients cannot all be certain: the index holds duplicates a steward must see.
    if sum(result.grade == "certain" for result in results) > 1:
        results = [
            MatchResult(
                r.patient_id, r.probability, "probable" if r.grade == "certain" else r.grade, r.details
            )
            for r in results
        ]
    return sorted(results, key=lambda result: (-result.probability, result.patient_id))
