"""The lab policy: canonical UCUM units, conversions with their reference ranges, flags kept."""

from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from governance.policies.labs import (
    ORIGINAL_VALUE_URL,
    UCUM_SYSTEM,
    lab_observation_normalize,
    lab_table,
)

HIGH = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]
}


def _lab(code: str, quantity: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "lab-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p-1"},
        "valueQuantity": quantity,
        **fields,
    }


def test_glucose_in_mmol_per_litre_becomes_mg_per_decilitre_with_its_range_and_flag() -> None:
    observation = _lab(
        "2345-7",
        {"value": 11.1, "unit": "mmol/L", "system": UCUM_SYSTEM, "code": "mmol/L"},
        interpretation=[HIGH],
        referenceRange=[{"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 5.5, "unit": "mmol/L"}}],
    )

    result, outcome = lab_observation_normalize(observation)

    assert outcome == "converted"
    assert {key: value for key, value in result["valueQuantity"].items() if key != "extension"} == {
        "value": 200,
        "unit": "mg/dL",
        "system": UCUM_SYSTEM,
        "code": "mg/dL",
    }
    assert result["valueQuantity"]["extension"] == [
        {"url": ORIGINAL_VALUE_URL, "valueQuantity": observation["valueQuantity"]}
    ]
    assert [(bound["value"], bound["code"]) for bound in result["referenceRange"][0].values()] == [
        (70, "mg/dL"),
        (99, "mg/dL"),
    ]
    assert result["interpretation"] == [HIGH]
    assert observation["valueQuantity"]["value"] == 11.1
    Observation.model_validate(result)


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("2160-0", 88.4, "umol/L", 1.0),
        ("2160-0", 97, "µmol/L", 1.1),
        ("3094-0", 5.0, "mmol/L", 14.0),
        ("2093-3", 5.17, "mmol/L", 200),
        ("2571-8", 1.7, "mmol/L", 151),
        ("1751-7", 39, "g/L", 3.9),
        ("17861-6", 2.4, "mmol/L", 9.6),
    ],
)
def test_conversions(code: str, value: float, unit: str, expected: float) -> None:
    result, outcome = lab_observation_normalize(_lab(code, {"value": value, "unit": unit}))
    assert outcome == "converted"
    assert result["valueQuantity"]["value"] == expected
    assert result["valueQuantity"]["code"] == lab_table()[code].canonical_unit


def test_a_unit_written_differently_is_coded_without_changing_the_value() -> None:
    result, outcome = lab_observation_normalize(_lab("2951-2", {"value": 140, "unit": "mEq/L"}))
    assert outcome == "unit-coded"
    assert result["valueQuantity"]["value"] == 140
    assert result["valueQuantity"]["code"] == "mmol/L"


def test_canonical_unknown_and_other_observations_are_left_as_they_are() -> None:
    canonical = _lab("2345-7", {"value": 95, "unit": "mg/dL", "system": UCUM_SYSTEM, "code": "mg/dL"})
    unknown = _lab("2345-7", {"value": 95, "unit": "bananas"})
    other = _lab("99999-9", {"value": 1, "unit": "mmol/L"})
    assert lab_observation_normalize(canonical) == (canonical, "canonical")
    assert lab_observation_normalize(unknown) == (unknown, "unknown-unit")
    assert lab_observation_normalize(other) == (other, "not-a-lab")


def test_converting_twice_changes_nothing() -> None:
    once, _ = lab_observation_normalize(_lab("2345-7", {"value": 5.5, "unit": "mmol/L"}))
    twice, outcome = lab_observation_normalize(once)
    assert (twice, outcome) == (once, "canonical")
