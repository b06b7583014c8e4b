"""Fellegi-Sunter scoring of one pair of records with a trained model, the way Splink scores it.

match weight = log2(prior odds) + sum over comparisons of log2(m / u) of the level that holds
             + for exact name levels: log2(u of that level) - log2(max(term frequency of the value)),
probability  = 2^weight / (1 + 2^weight).
Null levels weigh nothing. These are Splink's formulas (``splink/internals/comparison_level.py``), so a pair
gets the same weight online as in a bulk re-link.
"""

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patients.matching.comparisons import COMPARISONS
from patients.matching.features import Features

DEFAULT_MODEL_PATH = Path(__file__).with_name("data") / "default_model.json"
# Floor for m and u probabilities a training run left unset (a level it never saw), as Splink does.
_PROBABILITY_FLOOR = 1e-6


class ModelMismatch(Exception):
    """The stored model was trained on other comparisons than the code has now: retrain it."""


@dataclass(frozen=True)
class ComparisonWeights:
    name: str
    labels: tuple[str, ...]
    weights: tuple[float, ...]  # per level; 0.0 for the null level
    tf_column: tuple[str, ...]  # per level; "" when the level is not adjusted
    u_probabilities: tuple[float, ...]


@dataclass(frozen=True)
class MatchModelWeights:
    """A trained model in the form online scoring needs, with the decision thresholds."""

    model_id: int | None
    prior_weight: float
    comparisons: tuple[ComparisonWeights, ...]
    term_frequencies: dict[str, dict[str, float]]
    auto_match_probability: float
    review_probability: float

    @property
    def auto_match_weight(self) -> float:
        return probability_to_weight(self.auto_match_probability)

    @property
    def review_weight(self) -> float:
        return probability_to_weight(self.review_probability)


@dataclass
class PairScore:
    match_weight: float
    levels: list[int] = field(default_factory=list)  # level index per comparison
    weights: list[float] = field(default_factory=list)  # weight per comparison (term frequencies applied)

    @property
    def probability(self) -> float:
        return weight_to_probability(self.match_weight)

    @property
    def details(self) -> dict[str, dict[str, Any]]:
        """Comparison -> level label and weight: what a link stores to say why (built when asked for)."""
        return {
            comparison.name: {"level": comparison.levels[level].label, "weight": round(weight, 3)}
            for comparison, level, weight in zip(COMPARISONS, self.levels, self.weights, strict=True)
        }


def weight_to_probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    odds = 2.0**weight
    return odds / (1.0 + odds)


def probability_to_weight(probability: float) -> float:
    probability = min(max(probability, 1e-15), 1 - 1e-15)
    return math.log2(probability / (1.0 - probability))


def weights_from_settings(
    settings: dict[str, Any],
    *,
    term_frequencies: dict[str, dict[str, float]],
    model_id: int | None,
    auto_match_probability: float,
    review_probability: float,
) -> MatchModelWeights:
    """Read m and u per level from Splink settings; refuse settings whose levels differ from the code's."""
    by_name = {comparison["output_column_name"]: comparison for comparison in settings["comparisons"]}
    loaded = []
    for comparison in COMPARISONS:
        stored = by_name.get(comparison.name)
        if stored is None or len(stored["comparison_levels"]) != len(comparison.levels):
            raise ModelMismatch(f"comparison {comparison.name} differs from the trained model")
        weights, tf_columns, u_values = [], [], []
        for level, stored_level in zip(comparison.levels, stored["comparison_levels"], strict=True):
            if stored_level["sql_condition"].strip() != level.sql.strip():
                raise ModelMismatch(
                    f"{comparison.name}/{level.label}: condition differs from the trained model"
                )
            if level.is_null:
                weights.append(0.0)
                u_values.append(1.0)
            else:
                m = max(float(stored_level.get("m_probability") or 0.0), _PROBABILITY_FLOOR)
                u = max(float(stored_level.get("u_probability") or 0.0), _PROBABILITY_FLOOR)
                weights.append(math.log2(m / u))
                u_values.append(u)
            tf_columns.append(level.tf_column)
        loaded.append(
            ComparisonWeights(
                name=comparison.name,
                labels=tuple(level.label for level in comparison.levels),
                weights=tuple(weights),
                tf_column=tuple(tf_columns),
                u_probabilities=tuple(u_values),
            )
        )
    prior = float(settings["probability_two_random_records_match"])
    return MatchModelWeights(
        model_id=model_id,
        prior_weight=math.log2(prior / (1.0 - prior)),
        comparisons=tuple(loaded),
        term_frequencies=term_frequencies,
        auto_match_probability=auto_match_probability,
        review_probability=review_probability,
    )


@functools.cache
def default_weights() -> MatchModelWeights:
    """The shipped model, used until ``mpi_train`` has fitted one on this installation's own records."""
    stored = json.loads(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"))
    return weights_from_settings(
        stored["splink_settings"],
        term_frequencies=stored.get("term_frequencies", {}),
        model_id=None,
        auto_match_probability=stored["auto_match_probability"],
        review_probability=stored["review_probability"],
    )


def pair_score(model: MatchModelWeights, left: Features, right: Features) -> PairScore:
    total = model.prior_weight
    score = PairScore(match_weight=0.0)
    for comparison, weights in zip(COMPARISONS, model.comparisons, strict=True):
        index = comparison.level_of(left, right)
        weight = weights.weights[index]
        tf_column = weights.tf_column[index]
        if tf_column:
            frequencies = model.term_frequencies.get(tf_column, {})
            found = [
                frequencies[value] for value in (left[tf_column], right[tf_column]) if value in frequencies
            ]
            if found:
                weight += math.log2(weights.u_probabilities[index]) - math.log2(max(found))
        total += weight
        score.levels.append(index)
        score.weights.append(weight)
    score.match_weight = total
    return score
