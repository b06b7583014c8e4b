"""How a scored record is linked: thresholds and the safety rules, the same for online and bulk linking.

Pure functions over plain values, so that ``linking`` (one record, in the database) and ``relinking``
(every record, in memory) cannot drift apart.
"""

from dataclasses import dataclass, field

from patients.matching.comparisons import COMPARISONS
from patients.matching.features import Features
from patients.matching.scoring import MatchModelWeights, PairScore

MATCH = "MATCH"
POSSIBLE_MATCH = "POSSIBLE_MATCH"
NO_MATCH = "NO_MATCH"
# At most this many candidate patients go to a steward for one record.
MAX_REVIEWS = 3

_COMPARISON_INDEX = {comparison.name: index for index, comparison in enumerate(COMPARISONS)}
_ELSE_LEVEL = {comparison.name: len(comparison.levels) - 1 for comparison in COMPARISONS}
_SAME_IDENTIFIER_LEVEL = 1
# Given-name levels that say "the same name": exact, or nickname-equivalent.
_GIVEN_NAME_AGREES = {1, 2}
_NAMES_SWAPPED_LEVELS = {
    index
    for index, level in enumerate(COMPARISONS[_COMPARISON_INDEX["family_name"]].levels)
    if level.label.startswith("given and family names swapped")
}


@dataclass(frozen=True)
class Member:
    """A record already linked to a golden patient: what the same-source rule needs to know of it."""

    record_id: int
    source_id: int
    identifiers: tuple[str, ...]


@dataclass
class ScoredCandidate:
    record_id: int
    patient_id: int
    score: PairScore
    vetoes: list[str]


@dataclass
class CandidatePatient:
    patient_id: int
    best: ScoredCandidate
    automatic: bool  # a pair without veto reached the automatic threshold and no patient-level rule objects
    vetoes: list[str] = field(default_factory=list)

    @property
    def match_weight(self) -> float:
        return self.best.score.match_weight


@dataclass
class Decision:
    state: str
    patient_id: int | None  # None: the record starts a golden patient of its own
    best: CandidatePatient | None
    reason: str
    reviews: list[CandidatePatient] = field(default_factory=list)
    possible_duplicates: list[int] = field(default_factory=list)  # patients the record matched at once


def _level(score: PairScore, comparison: str) -> int:
    return score.levels[_COMPARISON_INDEX[comparison]]


def pair_vetoes(left: Features, right: Features, score: PairScore) -> list[str]:
    """Why this pair must not be linked automatically, whatever its score (empty: no objection)."""
    vetoes = []
    if left["placeholder"] or right["placeholder"]:
        vetoes.append("placeholder identity")
    names_swapped = _level(score, "family_name") in _NAMES_SWAPPED_LEVELS
    same_identifier = _level(score, "identifier") == _SAME_IDENTIFIER_LEVEL
    given_level = _level(score, "given_name")
    if given_level == _ELSE_LEVEL["given_name"] and not (names_swapped or same_identifier):
        vetoes.append("first names differ")  # twins share everything else, but never a record number
    elif (
        given_level not in _GIVEN_NAME_AGREES
        and not names_swapped
        and set(left["phones"]) & set(right["phones"])
        and not _personal_agreement(left, right, same_identifier=same_identifier)
    ):
        # Crystal and Krystal, Tung and Trung, born the same day in one household: twins look exactly like
        # a typo. Only something personal (own e-mail, own mobile, a record number) tells them apart.
        vetoes.append("similar first names in one household and nothing personal in common (twins?)")
    if _level(score, "birth_date") == _ELSE_LEVEL["birth_date"]:
        vetoes.append("birth dates differ")
    if _level(score, "sex") == _ELSE_LEVEL["sex"]:
        vetoes.append("sex differs")
    if left["suffix"] and right["suffix"] and left["suffix"] != right["suffix"]:
        vetoes.append("generational suffixes differ (Jr/Sr)")
    if _level(score, "ssn") == _ELSE_LEVEL["ssn"]:
        vetoes.append("social security numbers differ")
    return vetoes


def _personal_agreement(left: Features, right: Features, *, same_identifier: bool) -> bool:
    """Something one person does not share with their household: e-mail, mobile, record number, SSN."""
    return (
        same_identifier
        or bool(set(left["emails"]) & set(right["emails"]))
        or bool(set(left.get("mobile_phones") or []) & set(right.get("mobile_phones") or []))
        or (bool(left["ssn"]) and left["ssn"] == right["ssn"])
    )


def _identifier_conflict(identifiers: tuple[str, ...], other: tuple[str, ...]) -> bool:
    """Both carry an identifier of one system, and no value in common: two different registrations."""
    systems = {identifier.partition("|")[0] for identifier in identifiers}
    other_systems = {identifier.partition("|")[0] for identifier in other}
    return bool(systems & other_systems) and not set(identifiers) & set(other)


def patient_vetoes(
    *, source_id: int, identifiers: tuple[str, ...], members: list[Member], record_id: int
) -> list[str]:
    for member in members:
        if (
            member.record_id != record_id
            and member.source_id == source_id
            and _identifier_conflict(identifiers, member.identifiers)
        ):
            return ["same source, different medical record number"]
    return []


def decide(
    *,
    model: MatchModelWeights,
    record_id: int,
    source_id: int,
    features: Features,
    candidates: list[ScoredCandidate],
    members: dict[int, list[Member]],
    rejected_patients: frozenset[int] = frozenset(),
) -> Decision:
    """Link, send to review, or start a new golden patient. ``candidates`` are already scored."""
    by_patient: dict[int, list[ScoredCandidate]] = {}
    for candidate in candidates:
        if candidate.patient_id not in rejected_patients:
            by_patient.setdefault(candidate.patient_id, []).append(candidate)
    identifiers = tuple(features["identifiers"])
    patients: list[CandidatePatient] = []
    for patient_id, pairs in by_patient.items():
        top = max(pairs, key=lambda pair: pair.score.match_weight)
        vetoes = patient_vetoes(
            source_id=source_id,
            identifiers=identifiers,
            members=members.get(patient_id, []),
            record_id=record_id,
        )
        is_automatic = not vetoes and any(
            not pair.vetoes and pair.score.match_weight >= model.auto_match_weight for pair in pairs
        )
        patients.append(CandidatePatient(patient_id, top, is_automatic, vetoes or top.vetoes))
    patients.sort(key=lambda patient: (-patient.match_weight, patient.patient_id))
    automatic = [patient for patient in patients if patient.automatic]
    review = [
        patient
        for patient in patients
        if not patient.automatic and patient.match_weight >= model.review_weight
    ]
    best = patients[0] if patients else None
    if len(automatic) == 1:
        chosen = automatic[0]
        return Decision(
            MATCH,
            chosen.patient_id,
            chosen,
            f"automatic: probability {chosen.best.score.probability:.4f} >= {model.auto_match_probability}",
        )
    if len(automatic) > 1:
        return Decision(
            POSSIBLE_MATCH,
            None,
            automatic[0],
            f"matches {len(automatic)} patients at once: marked as possible duplicates",
            reviews=automatic[:MAX_REVIEWS],
            possible_duplicates=[patient.patient_id for patient in automatic],
        )
    if review:
        chosen = review[0]
        why = "; ".join(chosen.vetoes) or (
            f"probability {chosen.best.score.probability:.4f} in the review band "
            f"[{model.review_probability}, {model.auto_match_probability})"
        )
        return Decision(POSSIBLE_MATCH, None, chosen, f"review: {why}", reviews=review[:MAX_REVIEWS])
    reason = (
        f"no candidate reached {model.review_probability} (best {best.best.score.probability:.4f})"
        if best
        else "no candidate shares a blocking key"
    )
    return Decision(NO_MATCH, None, best, reason)
