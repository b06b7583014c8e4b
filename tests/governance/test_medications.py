"""The medication policy: RxNorm products, brand and generic names, fuzzy names with a confidence."""

from pathlib import Path

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from governance.policies.medications import (
    FUZZY_THRESHOLD,
    MATCH_EXTENSION_URL,
    RXNORM_SYSTEM,
    dose_form_parse,
    medication_concept_normalize,
    medication_resolve,
    medication_table,
    medication_table_load,
    strength_parse,
)


def _ingredients(text: str) -> list[str]:
    match = medication_resolve({"text": text})
    assert match is not None
    return [ingredient.name for ingredient in match.ingredients]


def test_every_synthea_rxnorm_code_seen_is_a_product_of_the_table() -> None:
    seen = (
        Path(__file__).resolve().parents[2].parent / "shared/data/terminology/synthea_rxnorm_codes_seen.tsv"
    )
    if not seen.exists():
        pytest.skip(f"shared terminology data is absent ({seen})")
    codes = [line.split("\t")[0] for line in seen.read_text().splitlines()[1:]]
    assert [code for code in codes if code not in medication_table().products] == []


def test_product_code_gives_ingredients_strength_and_dose_form() -> None:
    match = medication_resolve({"coding": [{"system": RXNORM_SYSTEM, "code": "1049625"}]})
    assert match is not None
    assert [(item.name, item.rxnorm_code) for item in match.ingredients] == [
        ("acetaminophen", "161"),
        ("oxycodone", "7804"),
    ]
    assert (match.method, match.confidence, match.strength, match.dose_form) == (
        "rxnorm-product",
        1.0,
        "325 MG / 10 MG",
        "Oral Tablet",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tylenol", ["acetaminophen"]),
        ("acetaminophen 500 mg", ["acetaminophen"]),
        ("Paracetamol 240mg suppository (product)", ["acetaminophen"]),
        ("Lipitor 20mg tablet", ["atorvastatin"]),
        ("atorvastatin", ["atorvastatin"]),
        ("Humulin 70/30", ["insulin isophane human", "insulin regular human"]),
        (
            "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML",
            ["insulin isophane human", "insulin regular human"],
        ),
        ("Zocor 40 MG", ["simvastatin"]),
        ("Percocet tablet", ["acetaminophen", "oxycodone"]),
        ("Tylenol PM", ["acetaminophen", "diphenhydramine"]),
        ("ethinyl estradiol 0.03 MG / levonorgestrel 0.15 MG", ["ethinyl estradiol", "levonorgestrel"]),
        ("Estradiol 1 MG", ["estradiol"]),
    ],
)
def test_brand_and_generic_names_give_the_same_ingredients(text: str, expected: list[str]) -> None:
    assert _ingredients(text) == expected


def test_a_misspelling_is_matched_with_its_confidence_recorded() -> None:
    match = medication_resolve({"text": "Simvistatin 10 MG"})
    assert match is not None
    assert [item.name for item in match.ingredients] == ["simvastatin"]
    assert match.method == "fuzzy-name"
    assert match.confidence == pytest.approx(0.944, abs=0.001)
    assert match.confidence >= FUZZY_THRESHOLD
    assert match.matched_text == "simvistatin->simvastatin"


@pytest.mark.parametrize(
    "text",
    [
        "Prednisolone 5 mg",  # two edits from prednisone: another drug, not a typo
        "Little Pink Pill for water retention",
        "Medication 1",
        "",
        "Sim 10 MG",  # too short to be told from other names
    ],
)
def test_nothing_is_guessed(text: str) -> None:
    assert medication_resolve({"text": text}) is None


def test_fuzzy_matching_is_only_tried_when_no_name_is_found() -> None:
    match = medication_resolve({"text": "Atorvastatin with Simvistatin"})
    assert match is not None
    assert (match.method, [item.name for item in match.ingredients]) == ("name", ["atorvastatin"])


@pytest.mark.parametrize(
    ("text", "strength", "form"),
    [
        ("Acetaminophen 325 MG Oral Tablet", "325 MG", "Oral Tablet"),
        ("Lasix 40mg", "40 MG", ""),
        ("150 ML vancomycin 5 MG/ML Injection", "5 MG/ML", "Injection"),
        (
            "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet",
            "100 MG",
            "Extended Release Oral Tablet",
        ),
        ("Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray", "0.4 MG/ACTUAT", "Mucosal Spray"),
        ("Azithromycin 250mg capsule", "250 MG", "Capsule"),
        ("Lorazepam 2 mcg", "2 MCG", ""),
    ],
)
def test_strength_and_dose_form_parse(text: str, strength: str, form: str) -> None:
    assert (strength_parse(text), dose_form_parse(text)) == (strength, form)


def test_normalize_adds_ingredient_codings_after_the_source_codings_and_is_idempotent() -> None:
    concept = {"coding": [{"system": "urn:local:pharmacy", "code": "L-77", "display": "Simvistatin 10 MG"}]}

    normalized, match = medication_concept_normalize(concept)

    assert concept == {
        "coding": [{"system": "urn:local:pharmacy", "code": "L-77", "display": "Simvistatin 10 MG"}]
    }
    assert match is not None
    assert normalized["coding"][0] == concept["coding"][0]
    added = normalized["coding"][1]
    assert (added["system"], added["code"], added["display"]) == (RXNORM_SYSTEM, "36567", "simvastatin")
    extension = added["extension"][0]
    assert extension["url"] == MATCH_EXTENSION_URL
    assert {
        part["url"]: next(value for key, value in part.items() if key != "url")
        for part in extension["extension"]
    } == {
        "method": "fuzzy-name",
        "confidence": 0.944,
        "matched": "simvistatin->simvastatin",
        "strength": "10 MG",
    }
    again, _ = medication_concept_normalize(normalized)
    assert again == normalized
    MedicationRequest.model_validate(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p-1"},
            "medicationCodeableConcept": normalized,
        }
    )


def test_a_combination_gains_one_coding_per_ingredient() -> None:
    normalized, _ = medication_concept_normalize({"text": "Percocet"})
    assert [(coding["code"], coding["display"]) for coding in normalized["coding"]] == [
        ("161", "acetaminophen"),
        ("7804", "oxycodone"),
    ]
    again, match = medication_concept_normalize(normalized)
    assert again == normalized
    assert match is not None
    assert [item.name for item in match.ingredients] == ["acetaminophen", "oxycodone"]


def test_an_unresolved_concept_is_returned_unchanged() -> None:
    concept = {"text": "Little Pink Pill"}
    normalized, match = medication_concept_normalize(concept)
    assert (normalized, match) == (concept, None)


def test_table_refuses_a_name_given_two_meanings(tmp_path: Path) -> None:
    path = tmp_path / "medications.csv"
    path.write_text(
        "kind,rxnorm_code,name,ingredients,strength,dose_form,synonyms,code_checked\n"
        "ingredient,1,alpha,,,,,\ningredient,2,beta,,,,,\nbrand,,Same,alpha,,,,\nbrand,,same,beta,,,,\n"
    )
    with pytest.raises(ValueError, match="names both"):
        medication_table_load(path)
