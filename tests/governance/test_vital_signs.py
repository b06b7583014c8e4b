"""The vital-sign policy: free-text blood pressure, LOINC coding, UCUM conversion, Synthea coverage."""

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from governance.policies.vital_signs import (
    BP_PANEL_CODES,
    DIASTOLIC,
    LOINC_SYSTEM,
    SYSTOLIC,
    UCUM_SYSTEM,
    blood_pressure_parse,
    vital_sign_normalize,
    vital_sign_table_load,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SYNTHEA = SHARED_DATA / "synthea-r4"
LOCAL_SYSTEM = "urn:oid:2.16.840.1.113883.19.5.1"
VITAL_SIGNS_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ]
}


def _observation(*, code: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": code,
        "subject": {"reference": "Patient/p-1"},
        **fields,
    }


def _local_code(display: str, code: str = "L1") -> dict[str, Any]:
    return {"coding": [{"system": LOCAL_SYSTEM, "code": code, "display": display}], "text": display}


def _loinc_codes(concept: dict[str, Any]) -> list[str]:
    return [coding["code"] for coding in concept.get("coding", []) if coding.get("system") == LOINC_SYSTEM]


def _normalize_valid(observation: dict[str, Any]) -> tuple[dict[str, Any], str]:
    original = copy.deepcopy(observation)
    result, outcome = vital_sign_normalize(observation)
    assert observation == original
    Observation.model_validate(result)
    return result, outcome


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120/80", (120, 80)),
        ("BP 120/80 mmHg", (120, 80)),
        ("120 / 80 sitting", (120, 80)),
        ("130/85 L arm", (130, 85)),
        ("B/P: 118/76", (118, 76)),
        ("142/91 (left arm, seated)", (142, 91)),
        ("b/p 110/70", (110, 70)),
        ("Blood pressure: 135/88 mm[Hg], HR 72/min", (135, 88)),
        ("  300/200 ", (300, 200)),
        ("50/20", (50, 20)),
        ("NIBP 101/64 supine", (101, 64)),
    ],
)
def test_blood_pressure_parse_reads_one_reading(text: str, expected: tuple[int, int]) -> None:
    assert blood_pressure_parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BP normal",
        "120/",
        "/80",
        "12/08/2020",
        "12/08",
        "120/80 at 12/08/2020",
        "120/80 then 118/76",
        "120/80, 118/76",
        "120/80/60",
        "80/120",
        "120/120",
        "301/80",
        "49/30",
        "120/19",
        "250/201",
        "1200/80",
        "120.5/80",
        "B/P: see chart",
    ],
)
def test_blood_pressure_parse_refuses_ambiguous_text(text: str) -> None:
    assert blood_pressure_parse(text) is None


@pytest.mark.parametrize(
    ("display", "value", "unit", "loinc_code", "expected_value", "expected_unit"),
    [
        ("Temp", 98.6, "[degF]", "8310-5", 37.0, "Cel"),
        ("Temp", 100.4, "F", "8310-5", 38.0, "Cel"),
        ("Wt", 154, "[lb_av]", "29463-7", 69.85, "kg"),
        ("Weight", 120, "oz", "29463-7", 3.4, "kg"),
        ("Height", 70, "[in_i]", "8302-2", 177.8, "cm"),
        ("Head circumference", 14, "in", "9843-4", 35.6, "cm"),
        ("Height", 1.75, "m", "8302-2", 175.0, "cm"),
    ],
)
def test_vital_sign_normalize_converts_units(
    display: str, value: float, unit: str, loinc_code: str, expected_value: float, expected_unit: str
) -> None:
    observation = _observation(code=_local_code(display), valueQuantity={"value": value, "unit": unit})

    result, outcome = _normalize_valid(observation)

    assert outcome == "converted"
    assert result["valueQuantity"] == {
        "value": expected_value,
        "unit": expected_unit,
        "system": UCUM_SYSTEM,
        "code": expected_unit,
    }
    assert _loinc_codes(result["code"]) == [loinc_code]


@pytest.mark.parametrize(
    ("display", "value", "unit", "loinc_code"),
    [
        ("Pulse", 72, "/min", "8867-4"),
        ("SpO2", 98, "%", "2708-6"),
        ("BMI", 22.6, "kg/m2", "39156-5"),
        ("Resp rate", 16, "/min", "9279-1"),
        ("Temp", 37.2, "Cel", "8310-5"),
        ("Head circumference", 35.5, "cm", "9843-4"),
    ],
)
def test_vital_sign_normalize_codes_local_codes_in_canonical_units(
    display: str, value: float, unit: str, loinc_code: str
) -> None:
    quantity = {"value": value, "unit": unit, "system": UCUM_SYSTEM, "code": unit}
    observation = _observation(code=_local_code(display), valueQuantity=quantity)

    result, outcome = _normalize_valid(observation)

    assert outcome == "coded"
    assert result["valueQuantity"] == quantity
    assert result["code"]["coding"][0] == observation["code"]["coding"][0]
    assert result["code"]["text"] == display
    assert _loinc_codes(result["code"]) == [loinc_code]
    assert result["category"] == [VITAL_SIGNS_CATEGORY]


def test_vital_sign_normalize_codes_and_converts_a_local_weight_in_pounds() -> None:
    observation = _observation(
        code=_local_code("Wt", code="WT"),
        category=[{"text": "Nursing"}],
        valueQuantity={"value": 154, "unit": "lbs"},
    )

    result, outcome = _normalize_valid(observation)

    assert outcome == "converted"
    assert result["code"] == {
        "coding": [
            {"system": LOCAL_SYSTEM, "code": "WT", "display": "Wt"},
            {"system": LOINC_SYSTEM, "code": "29463-7", "display": "Body weight"},
        ],
        "text": "Wt",
    }
    assert result["category"] == [{"text": "Nursing"}, VITAL_SIGNS_CATEGORY]
    assert result["valueQuantity"] == {"value": 69.85, "unit": "kg", "system": UCUM_SYSTEM, "code": "kg"}


def _synthea_blood_pressure() -> dict[str, Any]:
    def component(code: str, display: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC_SYSTEM, "code": code, "display": display}], "text": display},
            "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM_SYSTEM, "code": "mm[Hg]"},
        }

    return _observation(
        code={
            "coding": [{"system": LOINC_SYSTEM, "code": "55284-4", "display": "Blood Pressure"}],
            "text": "Blood Pressure",
        },
        category=[VITAL_SIGNS_CATEGORY],
        effectiveDateTime="2015-02-10T07:00:39-05:00",
        component=[
            component(DIASTOLIC, "Diastolic Blood Pressure", 82.0),
            component(SYSTOLIC, "Systolic Blood Pressure", 129.0),
        ],
    )


def test_vital_sign_normalize_leaves_a_synthea_blood_pressure_panel_as_it_is() -> None:
    observation = _synthea_blood_pressure()

    result, outcome = _normalize_valid(observation)

    assert outcome == "already-coded"
    assert result == observation
    assert result is not observation


def test_vital_sign_normalize_leaves_coded_canonical_weight_as_it_is_but_adds_the_category() -> None:
    observation = _observation(
        code={"coding": [{"system": LOINC_SYSTEM, "code": "29463-7", "display": "Body Weight"}]},
        valueQuantity={"value": 70.1, "unit": "kg", "system": UCUM_SYSTEM, "code": "kg"},
    )

    result, outcome = _normalize_valid(observation)

    assert outcome == "already-coded"
    assert result == {**observation, "category": [VITAL_SIGNS_CATEGORY]}


def test_vital_sign_normalize_converts_a_loinc_coded_temperature_in_fahrenheit() -> None:
    observation = _observation(
        code={"coding": [{"system": LOINC_SYSTEM, "code": "8310-5"}]},
        category=[VITAL_SIGNS_CATEGORY],
        valueQuantity={"value": 98.6, "unit": "degF", "system": UCUM_SYSTEM, "code": "[degF]"},
    )

    result, outcome = _normalize_valid(observation)

    assert outcome == "converted"
    assert result["code"] == observation["code"]
    assert result["valueQuantity"] == {"value": 37.0, "unit": "Cel", "system": UCUM_SYSTEM, "code": "Cel"}


def _blood_pressure_components(systolic: int, diastolic: int) -> list[tuple[list[str], dict[str, Any]]]:
    return [
        (
            [SYSTOLIC],
            {"value": systolic, "unit": "mm[Hg]", "system": UCUM_SYSTEM, "code": "mm[Hg]"},
        ),
        (
            [DIASTOLIC],
            {"value": diastolic, "unit": "mm[Hg]", "system": UCUM_SYSTEM, "code": "mm[Hg]"},
        ),
    ]


def test_vital_sign_normalize_turns_a_local_blood_pressure_string_into_a_panel() -> None:
    observation = _observation(
        code=_local_code("Blood Pressure", code="BP"), valueString="142/91 (left arm, seated)"
    )

    result, outcome = _normalize_valid(observation)

    assert outcome == "coded"
    assert _loinc_codes(result["code"]) == [BP_PANEL_CODES[0]]
    assert result["code"]["coding"][0]["code"] == "BP"
    assert "valueString" not in result
    assert result["note"] == [{"text": "142/91 (left arm, seated)"}]
    assert [
        (_loinc_codes(component["code"]), component["valueQuantity"]) for component in result["component"]
    ] == _blood_pressure_components(142, 91)


def test_vital_sign_normalize_reads_a_blood_pressure_from_a_note_and_keeps_the_note() -> None:
    observation = _observation(code=_local_code("B/P"), note=[{"text": "B/P: 118/76"}])

    result, outcome = _normalize_valid(observation)

    assert outcome == "coded"
    assert result["note"] == [{"text": "B/P: 118/76"}]
    assert [
        (_loinc_codes(component["code"]), component["valueQuantity"]) for component in result["component"]
    ] == _blood_pressure_components(118, 76)


def test_vital_sign_normalize_recognizes_blood_pressure_in_free_text_under_an_uncoded_concept() -> None:
    observation = _observation(code={"text": "Vitals"}, valueString="BP 120/80 mmHg")

    result, outcome = _normalize_valid(observation)

    assert outcome == "coded"
    assert result["code"]["text"] == "Vitals"
    assert _loinc_codes(result["code"]) == ["85354-9"]
    assert result["note"] == [{"text": "BP 120/80 mmHg"}]


def test_vital_sign_normalize_completes_a_loinc_panel_that_only_has_text() -> None:
    observation = _observation(
        code={"coding": [{"system": LOINC_SYSTEM, "code": "85354-9"}]},
        valueString="130/85 L arm",
    )

    result, outcome = _normalize_valid(observation)

    assert outcome == "coded"
    assert result["code"] == observation["code"]
    assert len(result["component"]) == 2


@pytest.mark.parametrize(
    "observation",
    [
        _observation(code=_local_code("Blood Pressure"), valueString="12/08/2020"),
        _observation(code=_local_code("Blood Pressure"), valueString="120/80 then 118/76"),
        _observation(code=_local_code("Blood Pressure"), note=[{"text": "120/80"}, {"text": "118/76"}]),
        _observation(code=_local_code("Blood Pressure")),
        _observation(code={"text": "Vitals"}, valueString="BP 80/120"),
        _observation(code=_local_code("Wt"), valueQuantity={"value": 11, "unit": "stone"}),
        _observation(code=_local_code("Wt"), valueQuantity={"value": 70}),
        _observation(code=_local_code("Temp"), valueString="feels warm"),
    ],
)
def test_vital_sign_normalize_leaves_unreadable_vital_signs_unchanged(observation: dict[str, Any]) -> None:
    result, outcome = _normalize_valid(observation)

    assert outcome == "text-unreadable"
    assert result == observation


@pytest.mark.parametrize(
    "observation",
    [
        _observation(
            code={"coding": [{"system": LOINC_SYSTEM, "code": "2345-7", "display": "Glucose"}]},
            valueQuantity={"value": 5.4, "unit": "mmol/L"},
        ),
        _observation(code=_local_code("Glucose"), valueString="120/80"),
        _observation(
            code={"coding": [{"system": LOINC_SYSTEM, "code": "2345-7"}]},
            valueString="BP 120/80",
        ),
        _observation(code={"text": "Comment"}, valueString="seen on 12/08/2020"),
    ],
)
def test_vital_sign_normalize_leaves_other_observations_alone(observation: dict[str, Any]) -> None:
    result, outcome = _normalize_valid(observation)

    assert outcome == "not-a-vital-sign"
    assert result == observation


def test_vital_sign_table_has_a_canonical_ucum_unit_for_every_measured_vital_sign() -> None:
    table = vital_sign_table_load()

    for code, vital in table.by_loinc_code.items():
        if code in BP_PANEL_CODES:
            assert vital.canonical_unit == ""
            continue
        assert vital.units[vital.canonical_unit.lower()].is_identity


def _synthea_vital_signs() -> list[dict[str, Any]]:
    observations = []
    for path in sorted(SYNTHEA.glob("*.json")):
        for entry in json.loads(path.read_bytes()).get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] != "Observation":
                continue
            categories = [
                coding.get("code")
                for category in resource.get("category", [])
                for coding in category.get("coding", [])
            ]
            if "vital-signs" in categories:
                observations.append(resource)
    return observations


def _has_ucum_quantity(quantity: dict[str, Any] | None) -> bool:
    return (
        bool(quantity)
        and quantity is not None
        and quantity.get("system") == UCUM_SYSTEM
        and bool(quantity.get("code"))
    )


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason=f"shared test data is absent ({SYNTHEA})")
def test_vital_sign_normalize_covers_every_synthea_vital_sign() -> None:
    observations = _synthea_vital_signs()
    outcomes: Counter[str] = Counter()

    for observation in observations:
        result, outcome = vital_sign_normalize(observation)
        outcomes[outcome] += 1
        assert _loinc_codes(result["code"]), result["id"]
        components = result.get("component") or []
        if components:
            assert all(_has_ucum_quantity(component.get("valueQuantity")) for component in components), (
                result["id"]
            )
        else:
            assert _has_ucum_quantity(result.get("valueQuantity")), result["id"]

    print(f"Synthea vital-sign observations: {len(observations)}, outcomes: {dict(outcomes)}")
    assert len(observations) > 0
    assert outcomes == Counter({"already-coded": len(observations)})


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason=f"shared test data is absent ({SYNTHEA})")
def test_vital_sign_normalize_results_parse_as_r4b_for_a_synthea_sample() -> None:
    for observation in _synthea_vital_signs()[:200]:
        Observation.model_validate(vital_sign_normalize(observation)[0])
