"""Survivorship: which source's value a golden record keeps, field by field, and why.

Rules are data: ``DEFAULT_RULES`` (the order of the tie-breakers per field) and ``DEFAULT_TRUST`` (a rank
per source kind and data domain, 1 = most trusted) are the shipped defaults; a source's connector settings
may override its ranks (``{"trust": {"contact": 1}}``). The governance screens make them editable.
Pure functions: no database, no Django models.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEMOGRAPHICS = "demographics"
CONTACT = "contact"
PREFERENCES = "preferences"

FIELD_DOMAINS: dict[str, str] = {
    "name": DEMOGRAPHICS,
    "birth_date": DEMOGRAPHICS,
    "gender": DEMOGRAPHICS,
    "deceased": DEMOGRAPHICS,
    "phone": CONTACT,
    "email": CONTACT,
    "address": CONTACT,
    "preferred_language": PREFERENCES,
}
# Attributes whose disagreement between trusted sources is raised as a conflict for a steward.
KEY_FIELDS = ("name", "birth_date", "gender", "phone", "address", "preferred_language")

# Registration desks verify identity documents; CRMs and engagement tools hear from the patient directly.
DEFAULT_TRUST: dict[str, dict[str, int]] = {
    "ehr": {DEMOGRAPHICS: 1, CONTACT: 2, PREFERENCES: 2},
    "lab": {DEMOGRAPHICS: 2, CONTACT: 4, PREFERENCES: 4},
    "payer": {DEMOGRAPHICS: 2, CONTACT: 3, PREFERENCES: 3},
    "crm": {DEMOGRAPHICS: 3, CONTACT: 1, PREFERENCES: 1},
    "engagement": {DEMOGRAPHICS: 4, CONTACT: 1, PREFERENCES: 1},
    "other": {DEMOGRAPHICS: 5, CONTACT: 5, PREFERENCES: 5},
}
# Sources ranked this well or better for a domain are "trusted": their disagreements are conflicts.
TRUSTED_RANK_LIMIT = 2

TRUST = "trust"
RECENCY = "recency"
VERIFIED = "verified"
COMPLETENESS = "completeness"
DEFAULT_RULES: dict[str, tuple[str, ...]] = dict.fromkeys(
    FIELD_DOMAINS, (TRUST, RECENCY, VERIFIED, COMPLETENESS)
)
RULE_LABELS = {
    TRUST: "most trusted source",
    RECENCY: "most recent",
    VERIFIED: "verified",
    COMPLETENESS: "most complete",
}


@dataclass(frozen=True)
class CandidateValue:
    """One source record's value for a field, with the evidence survivorship weighs."""

    value: Any
    comparable: str  # what "the same value" means for this field (case-folded, formatting removed)
    source_slug: str
    source_kind: str
    source_record_id: str
    record_ref: str  # the source record's external id
    recorded_at: datetime | None
    verified: bool = False
    completeness: int = 0
    trust_overrides: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    winner: CandidateValue
    rule: str  # label of the rule that decided, or "only value" / "all sources agree"


def trust_rank(candidate: CandidateValue, field_name: str) -> int:
    domain = FIELD_DOMAINS[field_name]
    if domain in candidate.trust_overrides:
        return int(candidate.trust_overrides[domain])
    return DEFAULT_TRUST.get(candidate.source_kind, DEFAULT_TRUST["other"])[domain]


def _sort_keys(field_name: str) -> dict[str, Callable[[CandidateValue], Any]]:
    return {
        TRUST: lambda candidate: trust_rank(candidate, field_name),
        RECENCY: lambda candidate: -(candidate.recorded_at.timestamp() if candidate.recorded_at else 0.0),
        VERIFIED: lambda candidate: not candidate.verified,
        COMPLETENESS: lambda candidate: -candidate.completeness,
    }


def value_choose(
    field_name: str, candidates: Sequence[CandidateValue], *, rules: Sequence[str] | None = None
) -> Choice | None:
    """The surviving value and the first rule that set it apart from the best differing value."""
    if not candidates:
        return None
    order = tuple(rules or DEFAULT_RULES[field_name])
    keys = _sort_keys(field_name)

    def rank(candidate: CandidateValue) -> tuple[Any, ...]:
        # The record reference last: a full tie is still decided the same way every time.
        return (*(keys[rule](candidate) for rule in order), candidate.record_ref)

    ranked = sorted(candidates, key=rank)
    winner = ranked[0]
    if len(ranked) == 1:
        return Choice(winner, "only value")
    rivals = [candidate for candidate in ranked[1:] if candidate.comparable != winner.comparable]
    if not rivals:
        return Choice(winner, "all sources agree")
    rival = rivals[0]
    for rule in order:
        if keys[rule](winner) != keys[rule](rival):
            return Choice(winner, RULE_LABELS[rule])
    return Choice(winner, "tie: first record")


def conflicting_values(field_name: str, candidates: Sequence[CandidateValue]) -> list[CandidateValue]:
    """Values of trusted sources that disagree (one per distinct value), or [] when they agree."""
    if field_name not in KEY_FIELDS:
        return []
    trusted = [c for c in candidates if trust_rank(c, field_name) <= TRUSTED_RANK_LIMIT and c.comparable]
    distinct: dict[str, CandidateValue] = {}
    for candidate in trusted:
        distinct.setdefault(candidate.comparable, candidate)
    return list(distinct.values()) if len(distinct) > 1 else []
