"""Splink (DuckDB, embedded) for what works on all records at once: fitting the weights and bulk scoring.

The comparisons come from ``comparisons.COMPARISONS`` (the same ones online matching evaluates in Python)
and bulk scoring blocks on the same keys online candidate search uses, so a bulk re-link sees the same
pairs with the same weights as online matching would.
"""

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
from splink import Linker, block_on
from splink.backends.duckdb import DuckDBAPI

from patients.matching.comparisons import COMPARED_COLUMNS, COMPARISONS
from patients.matching.features import Features, blocking_keys

logger = logging.getLogger(__name__)

TERM_FREQUENCY_COLUMNS = ("given", "family")
_LIST_COLUMNS = {"given_groups", "given_others", "family_tokens", "phones", "emails", "identifiers"}
_LIST_COLUMNS |= {"identifier_systems"}

# Pairs surely the same person, used to estimate how likely two random records are to match.
_DETERMINISTIC_RULES = (
    "l.given = r.given AND l.family = r.family AND l.birth_date = r.birth_date",
    "l.given = r.given AND l.birth_date = r.birth_date AND list_has_any(l.phones, r.phones)",
    "list_has_any(l.identifiers, r.identifiers)",
)
# Each EM session leaves the fields it blocks on untrained and trains the others.
_TRAINING_BLOCKS = (("birth_date",), ("family", "given"), ("postal_code", "given"))


def records_frame(records: Iterable[tuple[int, Features]]) -> pd.DataFrame:
    """One row per record: its id, the compared features (missing as NULL) and its blocking keys."""
    rows = []
    for record_id, features in records:
        row: dict[str, Any] = {"unique_id": record_id}
        for column in COMPARED_COLUMNS:
            value = features.get(column)
            row[column] = (list(value or []) if column in _LIST_COLUMNS else value) or None
        row["match_keys"] = blocking_keys(features)
        rows.append(row)
    columns = ["unique_id", *COMPARED_COLUMNS, "match_keys"]
    frame = pd.DataFrame(rows, columns=columns)
    # A column with no value at all must still have a type DuckDB understands.
    for column in COMPARED_COLUMNS:
        if frame[column].isna().all():
            frame[column] = frame[column].astype("object")
    return frame


def term_frequencies(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Share of records with each value among those with a value, as Splink computes it."""
    found: dict[str, dict[str, float]] = {}
    for column in TERM_FREQUENCY_COLUMNS:
        values = [value for value in frame[column] if value]
        counts = Counter(values)
        total = len(values)
        found[column] = {value: count / total for value, count in counts.items()} if total else {}
    return found


def splink_settings(*, prior: float = 1e-4) -> dict[str, Any]:
    comparisons = []
    for comparison in COMPARISONS:
        levels = []
        for level in comparison.levels:
            entry: dict[str, Any] = {"sql_condition": level.sql, "label_for_charts": level.label}
            if level.is_null:
                entry["is_null_level"] = True
            if level.tf_column:
                entry["tf_adjustment_column"] = level.tf_column
                entry["tf_adjustment_weight"] = 1.0
            levels.append(entry)
        comparisons.append(
            {
                "output_column_name": comparison.name,
                "comparison_description": comparison.description,
                "comparison_levels": levels,
            }
        )
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": prior,
        "comparisons": comparisons,
        "blocking_rules_to_generate_predictions": [
            block_on("match_keys", arrays_to_explode=["match_keys"]).get_blocking_rule("duckdb").as_dict()
        ],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
    }


# No level is impossible for a true match: records get mistyped, people move and change phones. EM
# on clean training data drives m of rare levels towards zero, which would make one stale phone number
# outweigh every other field; the floor keeps a single disagreement from vetoing a match by itself.
M_PROBABILITY_FLOOR = 0.01
U_PROBABILITY_FLOOR = 1e-6


def _regularize(settings: dict[str, Any]) -> None:
    """Give levels training never reached explicit values, and floor m (see M_PROBABILITY_FLOOR).

    A level seen neither among likely matches nor among random pairs is no evidence either way (m = u);
    one never seen among random pairs gets u at the floor (it is rare by chance: strong evidence).
    """
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if m is None and u is None:
                level["m_probability"] = level["u_probability"] = M_PROBABILITY_FLOOR
                continue
            level["m_probability"] = max(float(m or 0.0), M_PROBABILITY_FLOOR)
            level["u_probability"] = max(float(u or 0.0), U_PROBABILITY_FLOOR)


def model_train(frame: pd.DataFrame, *, max_pairs: float = 2e6, seed: int = 1) -> dict[str, Any]:
    """Fit m and u probabilities and the prior with Splink; return the settings with the fitted values."""
    database = DuckDBAPI()
    linker = Linker(database.register(frame), splink_settings(), log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(list(_DETERMINISTIC_RULES), recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    for columns in _TRAINING_BLOCKS:
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on(*columns), estimate_without_term_frequencies=True
        )
    settings = linker.misc.save_model_to_json()
    _regularize(settings)
    return settings


def pairs_score(
    frame: pd.DataFrame,
    *,
    settings: dict[str, Any],
    frequencies: dict[str, dict[str, float]],
    threshold_weight: float,
) -> Iterator[tuple[int, int, float]]:
    """(record id, record id, match weight) for every blocked pair at or above ``threshold_weight``."""
    database = DuckDBAPI()
    linker = Linker(database.register(frame), settings, log_level=logging.WARNING)
    for column in TERM_FREQUENCY_COLUMNS:
        table = pd.DataFrame(
            {
                column: list(frequencies.get(column, {})),
                f"tf_{column}": list(frequencies.get(column, {}).values()),
            }
        )
        if table.empty:
            table = pd.DataFrame({column: ["\x00"], f"tf_{column}": [1.0]})
        linker.table_management.register_term_frequency_lookup(database.register(table), column)
    predictions = linker.inference.predict(threshold_match_weight=threshold_weight)
    result = predictions.as_pandas_dataframe()
    for left, right, weight in zip(
        result["unique_id_l"], result["unique_id_r"], result["match_weight"], strict=True
    ):
        yield int(left), int(right), float(weight)
