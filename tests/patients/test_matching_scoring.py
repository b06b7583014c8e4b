"""Scoring (Splink in bulk, Python online: the same weights), the safety vetoes, and the linking decision."""

import json
import math
from collections import defaultdict
from itertools import combinations
from typing import Any

import pytest

from patients.matching import decisions
from patients.matching.comparisons import COMPARISONS
from patients.matching.decisions import Member, ScoredCandidate, decide, pair_vetoes
from patients.matching.features import (
    Features,
    blocking_keys,
    day_month_sorted,
    given_name_groups,
    patient_features,
)
from patients.matching.scoring import (
    DEFAULT_MODEL_PATH,
    MatchModelWeights,
    ModelMismatch,
    PairScore,
    default_weights,
    pair_score,
    probability_to_weight,
    weight_to_probability,
    weights_from_settings,
)
from patients.matching.training import pairs_score, records_frame, splink_settings, term_frequencies
from patients.normalize import patient_resource_normalize
from patients.synthetic import generate_population

JSON = dict[str, Any]
ALL_PAIRS = -1000.0  # a threshold weight no pair falls below: Splink returns every blocked pair
LEVEL_NAMES = {comparison.name: [level.label for level in comparison.levels] for comparison in COMPARISONS}


def default_settings() -> JSON:
    return dict(json.loads(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"))["splink_settings"])


def population_features(*, people: int, seed: int) -> dict[int, Features]:
    """Features of every EHR Patient of a generated population, keyed by a record number from 1."""
    population = generate_population(people=people, seed=seed)
    found: dict[int, Features] = {}
    for record in population.records:
        if record.payload.get("resourceType") != "Bundle":
            continue  # CRM rows are CSV, not FHIR
        for entry in record.payload["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                found[len(found) + 1] = patient_features(patient_resource_normalize(entry["resource"]))
    return found


def blocked_pairs(records: dict[int, Features]) -> set[tuple[int, int]]:
    """The pairs online candidate search would compare: records sharing at least one blocking key."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for record_id, features in records.items():
        for key in blocking_keys(features):
            by_key[key].append(record_id)
    return {pair for ids in by_key.values() for pair in combinations(sorted(ids), 2)}


def splink_weights(
    records: dict[int, Features],
    *,
    settings: JSON,
    frequencies: dict[str, dict[str, float]],
) -> dict[tuple[int, int], float]:
    frame = records_frame(records.items())
    return {
        (min(left, right), max(left, right)): weight
        for left, right, weight in pairs_score(
            frame, settings=settings, frequencies=frequencies, threshold_weight=ALL_PAIRS
        )
    }


def disagreements(
    records: dict[int, Features], weights: dict[tuple[int, int], float], model: MatchModelWeights
) -> list[tuple[int, int, float, float]]:
    found = []
    for (left, right), weight in sorted(weights.items()):
        online = pair_score(model, records[left], records[right]).match_weight
        if not math.isclose(online, weight, abs_tol=1e-6):
            found.append((left, right, weight, online))
    return found


def test_splink_blocks_exactly_the_pairs_online_candidate_search_finds() -> None:
    records = population_features(people=120, seed=3)

    weights = splink_weights(records, settings=default_settings(), frequencies={})

    assert set(weights) == blocked_pairs(records)
    assert len(weights) > 50


def test_splink_and_the_online_scorer_agree_on_every_blocked_pair_of_a_population() -> None:
    records = population_features(people=120, seed=3)
    model = default_weights()

    weights = splink_weights(records, settings=default_settings(), frequencies=model.term_frequencies)

    assert disagreements(records, weights, model) == []


def test_they_agree_with_term_frequency_adjustments_also_for_names_the_table_lacks() -> None:
    records = population_features(people=120, seed=4)
    # Frequencies from half the records: the other half has names the table does not know.
    half = dict(list(records.items())[: len(records) // 2])
    frequencies = term_frequencies(records_frame(half.items()))
    model = weights_from_settings(
        default_settings(),
        term_frequencies=frequencies,
        model_id=None,
        auto_match_probability=0.99,
        review_probability=0.5,
    )

    weights = splink_weights(records, settings=default_settings(), frequencies=frequencies)

    assert disagreements(records, weights, model) == []
    exact_names = [
        pair
        for pair in weights
        if pair_score(model, records[pair[0]], records[pair[1]]).details["family_name"]["level"] == "exact"
    ]
    unknown = [pair for pair in exact_names if records[pair[0]]["family"] not in frequencies["family"]]
    assert exact_names
    assert unknown


PRIMES = (
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
    73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173,
)  # fmt: skip


def distinct_weight_settings() -> JSON:
    """Settings whose every level has its own prime Bayes factor, so a pair's weight names its levels."""
    settings = splink_settings()
    primes = iter(PRIMES)
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level"):
                level["u_probability"] = 0.001
                level["m_probability"] = next(primes) / 1000
    return settings


def person(
    *,
    given: str = "",
    others: tuple[str, ...] = (),
    family: str = "",
    family_tokens: tuple[str, ...] | None = None,
    birth_date: str = "",
    **values: Any,
) -> Features:
    identifiers = values.get("identifiers", [])
    return {
        "given": given,
        "given_groups": given_name_groups(given),
        "given_others": list(others),
        "family": family,
        "family_tokens": list(family_tokens if family_tokens is not None else ([family] if family else [])),
        "suffix": "",
        "birth_date": birth_date,
        "birth_date_sorted": day_month_sorted(birth_date),
        "sex": "",
        "phones": [],
        "emails": [],
        "street": "",
        "city": "",
        "postal_code": "",
        "identifiers": [],
        "identifier_systems": sorted({identifier.partition("|")[0] for identifier in identifiers}),
        "ssn": "",
        "placeholder": False,
        **values,
    }


# (left, right, comparison, expected level): one pair per level of every comparison.
LEVEL_PAIRS: list[tuple[Features, Features, str, str]] = [
    (person(given="anna"), person(given="anna"), "given_name", "exact"),
    (person(given="william"), person(given="liam"), "given_name", "nickname"),
    (person(given="zephyrine"), person(given="zephyrina"), "given_name", "jaro-winkler >= 0.92"),
    (person(given="al"), person(given="el"), "given_name", "one character different"),
    (
        person(given="james"),
        person(given="robert", others=("james",)),
        "given_name",
        "first name is the other's middle name",
    ),
    (person(given="christopher"), person(given="christian"), "given_name", "jaro-winkler >= 0.80"),
    (person(given="anna"), person(given="zoe"), "given_name", "different"),
    (person(given="anna"), person(), "given_name", "missing"),
    (person(family="quigley"), person(family="quigley"), "family_name", "exact"),
    (
        person(family="garcialopez", family_tokens=("garcia", "lopez")),
        person(family="lopez"),
        "family_name",
        "shares a name part",
    ),
    (person(family="johnson"), person(family="johnsen"), "family_name", "jaro-winkler >= 0.92"),
    (person(family="li"), person(family="lu"), "family_name", "one character different"),
    (
        person(given="smith", family="john"),
        person(given="john", family="smith"),
        "family_name",
        "given and family names swapped",
    ),
    (
        person(given="huxley", family="claudia"),
        person(given="claudia", family="huxlee"),
        "family_name",
        "given and family names swapped, with typos",
    ),
    (person(family="christopher"), person(family="christian"), "family_name", "jaro-winkler >= 0.80"),
    (person(family="quigley"), person(family="zhang"), "family_name", "different"),
    (person(family="quigley"), person(), "family_name", "missing"),
    (person(birth_date="1980-03-07"), person(birth_date="1980-03-07"), "birth_date", "exact"),
    (
        person(birth_date="1980-03-07"),
        person(birth_date="1980-03-08"),
        "birth_date",
        "one digit wrong or two swapped",
    ),
    (person(birth_date="1980-03-07"), person(birth_date="1980-07-03"), "birth_date", "day and month swapped"),
    (person(birth_date="1980-03-07"), person(birth_date="1981-03-08"), "birth_date", "two digits wrong"),
    (person(birth_date="1980-03-07"), person(birth_date="1950-11-21"), "birth_date", "different"),
    (person(birth_date="1980-03-07"), person(), "birth_date", "missing"),
    (person(sex="female"), person(sex="female"), "sex", "exact"),
    (person(sex="female"), person(sex="male"), "sex", "different"),
    (person(sex="female"), person(), "sex", "missing"),
    (person(phones=["+16175550100"]), person(phones=["+16175550101"]), "phone", "different"),
    (person(street="12 elm st", postal_code="02108"), person(), "address", "missing"),
    (
        person(street="12 elm st", postal_code="02108"),
        person(street="12 elm st", postal_code="02108"),
        "address",
        "same street address",
    ),
    (
        person(street="12 elm st", postal_code="02108"),
        person(street="12 elm st"),
        "address",
        "same street address",
    ),
    (
        person(street="12 elm st", postal_code="02108"),
        person(street="12 elm street", postal_code="02108"),
        "address",
        "similar street, same postal code",
    ),
    (
        person(street="12 elm st", postal_code="02108"),
        person(street="99 oak avenue", postal_code="02108"),
        "address",
        "same postal code",
    ),
    (
        person(street="12 elm st", postal_code="02108", city="boston"),
        person(street="99 oak avenue", postal_code="02139", city="boston"),
        "address",
        "same city",
    ),
    (
        person(street="12 elm st", postal_code="02108", city="boston"),
        person(street="99 oak avenue", postal_code="10001", city="newyork"),
        "address",
        "different",
    ),
    (
        person(identifiers=["urn:mrn|A-1"]),
        person(identifiers=["urn:mrn|A-1"]),
        "identifier",
        "same identifier",
    ),
    (person(identifiers=["urn:mrn|A-1"]), person(identifiers=["urn:mrn|A-2"]), "identifier", "different"),
    (
        person(identifiers=["urn:mrn|A-1"]),
        person(identifiers=["urn:other|A-1"]),
        "identifier",
        "no shared identifier system",
    ),
    (person(ssn="123456789"), person(ssn="123456789"), "ssn", "exact"),
    (person(ssn="123456789"), person(ssn="123456780"), "ssn", "one digit wrong"),
    (person(ssn="123456789"), person(ssn="987654321"), "ssn", "different"),
    (person(ssn="123456789"), person(), "ssn", "missing"),
]


def level_pair_records() -> dict[int, Features]:
    """The level pairs, each blocked together by an e-mail address of its own.

    The pairs for the e-mail levels are blocked by a shared phone number instead.
    """
    records: dict[int, Features] = {}
    for number, (left, right, _, _) in enumerate(LEVEL_PAIRS):
        email = [f"pair{number}@example.org"]
        records[2 * number + 1] = {**left, "emails": email}
        records[2 * number + 2] = {**right, "emails": email}
    base = 2 * len(LEVEL_PAIRS)
    phone = ["+16175550199"]
    records[base + 1] = person(phones=phone, emails=["one@example.org"])
    records[base + 2] = person(phones=phone, emails=["two@example.org"])
    records[base + 3] = person(phones=["+16175550198"], emails=["three@example.org"])
    records[base + 4] = person(phones=["+16175550198"])
    return records


def test_every_level_pair_is_at_the_level_it_was_built_for() -> None:
    model = default_weights()

    found = [
        pair_score(model, left, right).details[comparison]["level"]
        for left, right, comparison, _ in LEVEL_PAIRS
    ]

    assert found == [level for _, _, _, level in LEVEL_PAIRS]


def test_splink_and_the_online_scorer_pick_the_same_level_of_every_comparison() -> None:
    settings = distinct_weight_settings()
    model = weights_from_settings(
        settings, term_frequencies={}, model_id=None, auto_match_probability=0.99, review_probability=0.5
    )
    records = level_pair_records()

    weights = splink_weights(records, settings=settings, frequencies={})

    assert disagreements(records, weights, model) == []
    reached = {
        (comparison.name, comparison.levels[index].label)
        for left, right in weights
        for comparison, index in zip(
            COMPARISONS, pair_score(model, records[left], records[right]).levels, strict=True
        )
    }
    assert reached == {(name, label) for name, labels in LEVEL_NAMES.items() for label in labels}
    assert {(2 * number + 1, 2 * number + 2) for number in range(len(LEVEL_PAIRS))} <= set(weights)


def test_a_pair_score_is_the_prior_plus_the_level_weights() -> None:
    model = default_weights()
    left = person(given="anna", family="quigley", birth_date="1980-03-07", sex="female")
    right = person(given="anna", family="quigley", birth_date="1980-07-03", sex="male")

    score = pair_score(model, left, right)

    expected_levels = [1, 1, 3, 2, 0, 0, 0, 0, 0]
    assert score.levels == expected_levels
    level_weights = [
        weights.weights[index] for weights, index in zip(model.comparisons, expected_levels, strict=True)
    ]
    assert math.isclose(score.match_weight, model.prior_weight + sum(level_weights), abs_tol=1e-9)
    assert score.details["birth_date"] == {
        "level": "day and month swapped",
        "weight": round(model.comparisons[2].weights[3], 3),
    }
    assert score.details["email"] == {"level": "missing", "weight": 0.0}


def test_probabilities_and_weights_convert_both_ways() -> None:
    assert weight_to_probability(0.0) == 0.5
    assert weight_to_probability(100.0) == 1.0
    assert math.isclose(probability_to_weight(0.99), math.log2(99), abs_tol=1e-12)
    assert math.isclose(weight_to_probability(probability_to_weight(0.2)), 0.2, abs_tol=1e-12)


def test_a_model_trained_on_other_comparisons_is_refused() -> None:
    settings = default_settings()
    settings["comparisons"][0]["comparison_levels"][1]["sql_condition"] = "given_l = given_r OR TRUE"

    with pytest.raises(ModelMismatch, match="given_name/exact: condition differs"):
        weights_from_settings(
            settings, term_frequencies={}, model_id=None, auto_match_probability=0.99, review_probability=0.5
        )


# Vetoes, on features of FHIR Patients as ingestion stores them.


def fhir_features(
    given: str,
    family: str,
    birth_date: str,
    *,
    sex: str = "male",
    suffix: str = "",
    mrn: str = "",
    ssn: str = "",
    phone: str = "+16175550134",
) -> Features:
    name: JSON = {"use": "official", "family": family, "given": given.split()}
    if suffix:
        name["suffix"] = [suffix]
    identifiers = []
    if mrn:
        identifiers.append({"system": "urn:oid:1.2.3", "value": mrn})
    if ssn:
        identifiers.append({"system": "http://hl7.org/fhir/sid/us-ssn", "value": ssn})
    return patient_features(
        {
            "resourceType": "Patient",
            "identifier": identifiers,
            "name": [name],
            "birthDate": birth_date,
            "gender": sex,
            "telecom": [{"system": "phone", "value": phone}],
            "address": [{"line": ["12 Elm Street"], "city": "Boston", "postalCode": "02108"}],
        }
    )


def vetoes_of(left: Features, right: Features) -> list[str]:
    return pair_vetoes(left, right, pair_score(default_weights(), left, right))


def test_twins_are_vetoed_for_their_first_names_though_everything_else_agrees() -> None:
    emma, noah = fhir_features("Emma", "Clark", "2001-05-14"), fhir_features("Noah", "Clark", "2001-05-14")

    assert pair_score(default_weights(), emma, noah).probability > 0.99
    assert vetoes_of(emma, noah) == ["first names differ"]


def test_twins_of_different_sex_are_vetoed_for_both() -> None:
    emma = fhir_features("Emma", "Clark", "2001-05-14", sex="female")

    assert vetoes_of(emma, fhir_features("Noah", "Clark", "2001-05-14")) == [
        "first names differ",
        "sex differs",
    ]


def test_different_first_names_with_the_same_record_number_are_not_vetoed() -> None:
    registered = fhir_features("Robert", "Clark", "2001-05-14", mrn="A-1")
    known_by_nickname = fhir_features("Zed", "Clark", "2001-05-14", mrn="A-1")

    assert vetoes_of(registered, known_by_nickname) == []


def test_given_and_family_names_swapped_are_not_vetoed_for_the_first_name() -> None:
    assert (
        vetoes_of(fhir_features("Wei", "Zhang", "1970-01-20"), fhir_features("Zhang", "Wei", "1970-01-20"))
        == []
    )


def test_names_swapped_with_a_typo_are_not_vetoed_but_twins_still_are() -> None:
    swapped = fhir_features("Huxley", "Claudia", "1970-01-20", sex="female")
    registered = fhir_features("Claudia", "Huxlee", "1970-01-20", sex="female")
    twin = fhir_features("Chloe", "Huxlee", "1970-01-20", sex="female")

    assert vetoes_of(swapped, registered) == []
    assert vetoes_of(registered, twin) == ["first names differ"]


def test_junior_and_senior_are_vetoed_for_birth_date_and_suffix() -> None:
    senior = fhir_features("John", "Smith", "1962-08-30", suffix="Sr")
    junior = fhir_features("John", "Smith", "1990-02-11", suffix="Jr.")

    assert vetoes_of(senior, junior) == ["birth dates differ", "generational suffixes differ (Jr/Sr)"]


def test_junior_and_senior_suffixes_veto_even_with_the_same_birth_date() -> None:
    senior = fhir_features("John", "Smith", "1962-08-30", suffix="Senior")
    junior = fhir_features("John", "Smith", "1962-08-30", suffix="Junior")

    assert pair_score(default_weights(), senior, junior).probability > 0.99
    assert vetoes_of(senior, junior) == ["generational suffixes differ (Jr/Sr)"]


def test_a_suffix_on_one_record_only_is_no_veto() -> None:
    assert (
        vetoes_of(
            fhir_features("John", "Smith", "1990-02-11", suffix="Jr"),
            fhir_features("John", "Smith", "1990-02-11"),
        )
        == []
    )


def test_placeholder_identities_are_vetoed() -> None:
    doe = fhir_features("John", "Doe", "1971-05-02")

    assert vetoes_of(doe, fhir_features("John", "Doe", "1971-05-02")) == ["placeholder identity"]
    assert vetoes_of(fhir_features("Baby Girl", "Clark", "2024-01-15", sex="female"), doe) == [
        "placeholder identity",
        "first names differ",
        "birth dates differ",
        "sex differs",
    ]


def test_different_social_security_numbers_are_vetoed() -> None:
    first = fhir_features("Anna", "Quigley", "1961-04-12", ssn="123-45-6789")

    assert vetoes_of(first, fhir_features("Anna", "Quigley", "1961-04-12", ssn="987-65-4321")) == [
        "social security numbers differ"
    ]
    assert vetoes_of(first, fhir_features("Anna", "Quigley", "1961-04-12", ssn="123-45-6780")) == []


@pytest.mark.parametrize(
    ("family", "other"), [("O'Brien", "O'Connor"), ("de la Cruz", "de Jesus"), ("Van Dyke", "Van Buren")]
)
def test_family_names_sharing_only_a_particle_are_not_linked_automatically(family: str, other: str) -> None:
    def features(name: str) -> Features:
        return patient_features(
            {
                "resourceType": "Patient",
                "name": [{"family": name, "given": ["Sean"]}],
                "birthDate": "1970-02-11",
                "gender": "male",
            }
        )

    model = default_weights()
    one, two = features(family), features(other)
    score = pair_score(model, one, two)

    decision = decide(
        model=model,
        record_id=2,
        source_id=2,
        features=two,
        candidates=[ScoredCandidate(1, 10, score, pair_vetoes(two, one, score))],
        members={},
    )

    assert score.details["family_name"]["level"] == "different"
    assert decision.state == decisions.POSSIBLE_MATCH


def test_a_double_family_name_still_shares_a_part_with_either_half() -> None:
    one = fhir_features("Lucia", "García López", "1970-02-11", sex="female")
    two = fhir_features("Lucia", "Lopez", "1970-02-11", sex="female")

    assert pair_score(default_weights(), one, two).details["family_name"]["level"] == "shares a name part"


@pytest.mark.parametrize(
    ("first", "second"),
    [("Crystal", "Krystal"), ("Tung", "Trung"), ("Anthony David", "David")],
)
def test_twins_with_look_alike_first_names_are_never_linked_automatically(first: str, second: str) -> None:
    model = default_weights()
    one = fhir_features(first, "Arroyo", "1951-11-22", sex="female")
    other = fhir_features(second, "Arroyo", "1951-11-22", sex="female")
    score = pair_score(model, one, other)

    decision = decide(
        model=model,
        record_id=2,
        source_id=2,
        features=other,
        candidates=[ScoredCandidate(1, 10, score, pair_vetoes(other, one, score))],
        members={},
    )

    assert decision.state != decisions.MATCH


# Decisions, on hand-built scores: the default model links automatically at probability 0.99
# (weight 6.63) and sends pairs to review from 0.5 (weight 0).

AUTOMATIC = 20.0
REVIEW_BAND = 3.0
BELOW_REVIEW = -5.0


def candidate(record_id: int, patient_id: int, weight: float, *vetoes: str) -> ScoredCandidate:
    return ScoredCandidate(record_id, patient_id, PairScore(match_weight=weight), list(vetoes))


def decide_for(
    candidates: list[ScoredCandidate],
    *,
    identifiers: tuple[str, ...] = (),
    members: dict[int, list[Member]] | None = None,
    rejected: frozenset[int] = frozenset(),
) -> decisions.Decision:
    return decide(
        model=default_weights(),
        record_id=100,
        source_id=1,
        features={"identifiers": list(identifiers)},
        candidates=candidates,
        members=members or {},
        rejected_patients=rejected,
    )


def test_no_candidate_starts_a_patient_of_its_own() -> None:
    decision = decide_for([])

    assert (decision.state, decision.patient_id, decision.best) == (decisions.NO_MATCH, None, None)
    assert decision.reason == "no candidate shares a blocking key"
    assert (decision.reviews, decision.possible_duplicates) == ([], [])


def test_a_candidate_below_the_review_band_is_no_match() -> None:
    decision = decide_for([candidate(1, 10, BELOW_REVIEW)])

    assert (decision.state, decision.patient_id) == (decisions.NO_MATCH, None)
    assert decision.best is not None
    assert decision.best.patient_id == 10
    assert decision.reason == f"no candidate reached 0.5 (best {weight_to_probability(BELOW_REVIEW):.4f})"
    assert decision.reviews == []


def test_one_automatic_candidate_patient_is_a_match() -> None:
    decision = decide_for(
        [candidate(1, 10, AUTOMATIC), candidate(2, 10, REVIEW_BAND), candidate(3, 11, REVIEW_BAND)]
    )

    assert (decision.state, decision.patient_id) == (decisions.MATCH, 10)
    assert decision.best is not None
    assert decision.best.best.record_id == 1
    assert decision.reason == "automatic: probability 1.0000 >= 0.99"
    assert (decision.reviews, decision.possible_duplicates) == ([], [])


def test_the_automatic_threshold_is_inclusive() -> None:
    decision = decide_for([candidate(1, 10, probability_to_weight(0.99))])

    assert (decision.state, decision.patient_id) == (decisions.MATCH, 10)


def test_a_candidate_in_the_review_band_goes_to_review() -> None:
    decision = decide_for([candidate(1, 10, REVIEW_BAND)])

    assert (decision.state, decision.patient_id) == (decisions.POSSIBLE_MATCH, None)
    assert [review.patient_id for review in decision.reviews] == [10]
    probability = weight_to_probability(REVIEW_BAND)
    assert decision.reason == f"review: probability {probability:.4f} in the review band [0.5, 0.99)"


def test_a_vetoed_pair_above_the_threshold_goes_to_review_with_its_veto() -> None:
    decision = decide_for([candidate(1, 10, AUTOMATIC, "first names differ")])

    assert (decision.state, decision.patient_id) == (decisions.POSSIBLE_MATCH, None)
    assert decision.reason == "review: first names differ"
    assert [(review.patient_id, review.vetoes) for review in decision.reviews] == [
        (10, ["first names differ"])
    ]


def test_a_patient_is_automatic_when_any_of_its_records_matches_without_veto() -> None:
    decision = decide_for([candidate(1, 10, AUTOMATIC + 5, "sex differs"), candidate(2, 10, AUTOMATIC)])

    assert (decision.state, decision.patient_id) == (decisions.MATCH, 10)
    assert decision.best is not None
    assert decision.best.best.record_id == 1  # the best pair is still shown, veto and all
    assert decision.best.vetoes == ["sex differs"]


def test_a_record_matching_two_patients_automatically_marks_them_as_possible_duplicates() -> None:
    decision = decide_for([candidate(1, 11, AUTOMATIC), candidate(2, 10, AUTOMATIC + 1)])

    assert (decision.state, decision.patient_id) == (decisions.POSSIBLE_MATCH, None)
    assert decision.possible_duplicates == [10, 11]
    assert [review.patient_id for review in decision.reviews] == [10, 11]
    assert decision.reason == "matches 2 patients at once: marked as possible duplicates"


def test_at_most_three_possible_duplicates_go_to_review_but_all_are_marked() -> None:
    decision = decide_for([candidate(number, 10 + number, AUTOMATIC) for number in range(4)])

    assert decision.possible_duplicates == [10, 11, 12, 13]
    assert [review.patient_id for review in decision.reviews] == [10, 11, 12]
    assert decision.reason == "matches 4 patients at once: marked as possible duplicates"


def test_reviews_are_ordered_by_weight_then_patient_and_capped() -> None:
    decision = decide_for(
        [
            candidate(1, 13, REVIEW_BAND),
            candidate(2, 12, REVIEW_BAND + 1),
            candidate(3, 11, REVIEW_BAND),
            candidate(4, 10, REVIEW_BAND),
            candidate(5, 14, BELOW_REVIEW),
        ]
    )

    assert decision.state == decisions.POSSIBLE_MATCH
    assert [review.patient_id for review in decision.reviews] == [12, 10, 11]


def test_a_record_of_the_same_source_with_another_medical_record_number_is_never_automatic() -> None:
    members = {10: [Member(record_id=1, source_id=1, identifiers=("urn:oid:1.2.3|A-1",))]}

    decision = decide_for([candidate(1, 10, AUTOMATIC)], identifiers=("urn:oid:1.2.3|A-2",), members=members)

    assert (decision.state, decision.patient_id) == (decisions.POSSIBLE_MATCH, None)
    assert decision.reason == "review: same source, different medical record number"
    assert [(review.patient_id, review.vetoes) for review in decision.reviews] == [
        (10, ["same source, different medical record number"])
    ]


def test_the_same_medical_record_number_of_the_same_source_links() -> None:
    members = {10: [Member(record_id=1, source_id=1, identifiers=("urn:oid:1.2.3|A-1",))]}

    decision = decide_for([candidate(1, 10, AUTOMATIC)], identifiers=("urn:oid:1.2.3|A-1",), members=members)

    assert (decision.state, decision.patient_id) == (decisions.MATCH, 10)


def test_another_source_or_another_identifier_system_is_no_same_source_conflict() -> None:
    members = {
        10: [Member(record_id=1, source_id=2, identifiers=("urn:oid:1.2.3|A-1",))],
        11: [Member(record_id=2, source_id=1, identifiers=("urn:other|B-1",))],
    }

    first = decide_for([candidate(1, 10, AUTOMATIC)], identifiers=("urn:oid:1.2.3|A-2",), members=members)
    second = decide_for([candidate(2, 11, AUTOMATIC)], identifiers=("urn:oid:1.2.3|A-2",), members=members)

    assert (first.state, first.patient_id) == (decisions.MATCH, 10)
    assert (second.state, second.patient_id) == (decisions.MATCH, 11)


def test_patients_a_steward_rejected_for_this_record_are_not_candidates() -> None:
    decision = decide_for(
        [candidate(1, 10, AUTOMATIC), candidate(2, 11, REVIEW_BAND)], rejected=frozenset({10})
    )

    assert decision.state == decisions.POSSIBLE_MATCH
    assert [review.patient_id for review in decision.reviews] == [11]
    assert decide_for([candidate(1, 10, AUTOMATIC)], rejected=frozenset({10})).state == decisions.NO_MATCH
