"""Terminology normalization of whole resources: vital signs, labs, medications, maps, unmapped findings."""

import copy
import json
from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation

from governance.policies.terminology import (
    MapEntry,
    UnmappedConcept,
    default_map_entries,
    terminology_maps_build,
)
from governance.reports import fhir_json_files, terminology_coverage, vital_sign_is_coded
from patients.normalize import ORIGINAL_VALUE_URL, resource_terminology_normalize
from tests.patients.conftest import SHARED_DATA

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
LOCAL = "urn:oid:2.16.840.1.113883.19.5.99"
MAPS = terminology_maps_build(default_map_entries())


def _observation(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        **fields,
    }


def _medication_request(concept: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "mr-1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p-1"},
        "medicationCodeableConcept": concept,
    }


def _codes(concept: dict[str, Any], system: str) -> list[str]:
    return [coding["code"] for coding in concept.get("coding", []) if coding.get("system") == system]


def _normalize(resource: dict[str, Any], **options: Any) -> tuple[dict[str, Any], Any]:
    original = copy.deepcopy(resource)
    result, findings = resource_terminology_normalize(resource, maps=options.pop("maps", MAPS), **options)
    assert resource == original, "the input must not change"
    again, _ = resource_terminology_normalize(result, maps=MAPS, **options)
    assert again == result, "normalizing twice must change nothing"
    return result, findings


@pytest.mark.parametrize(
    ("value_string", "reading"),
    [
        ("120/80", (120, 80)),
        ("BP 142/91", (142, 91)),
        ("BP 120/80 mmHg", (120, 80)),
        ("130/85 L arm", (130, 85)),
    ],
)
def test_free_text_blood_pressure_becomes_a_coded_panel(value_string: str, reading: tuple[int, int]) -> None:
    code = {
        "coding": [{"system": LOCAL, "code": "BP", "display": "Blood pressure"}],
        "text": "Blood pressure",
    }
    observation = _observation(code=code, valueString=value_string)

    result, findings = _normalize(observation)

    assert findings.vital_sign == "coded"
    assert findings.unmapped == []
    assert result["code"]["coding"][0] == code["coding"][0]
    assert result["code"]["text"] == "Blood pressure"
    assert _codes(result["code"], LOINC) == ["85354-9"]
    values = {_codes(item["code"], LOINC)[0]: item["valueQuantity"]["value"] for item in result["component"]}
    assert values == {"8480-6": reading[0], "8462-4": reading[1]}
    assert result["note"] == [{"text": value_string}]
    assert vital_sign_is_coded(result)
    Observation.model_validate(result)


def test_blood_pressure_in_a_note_is_read_and_the_note_kept() -> None:
    observation = _observation(code={"text": "BP"}, note=[{"text": "BP 142/91 sitting"}])
    result, _ = _normalize(observation)
    assert _codes(result["code"], LOINC) == ["85354-9"]
    assert result["note"] == [{"text": "BP 142/91 sitting"}]


def test_unreadable_text_stays_text_and_is_counted() -> None:
    observation = _observation(code={"text": "Blood pressure"}, valueString="patient refused")
    result, findings = _normalize(observation)
    assert result == observation
    assert findings.vital_sign == "text-unreadable"


def test_a_converted_vital_sign_keeps_the_source_quantity() -> None:
    quantity = {"value": 185, "unit": "lbs", "system": UCUM, "code": "[lb_av]"}
    observation = _observation(
        code={"coding": [{"system": LOINC, "code": "29463-7", "display": "Body Weight"}]},
        valueQuantity=quantity,
    )

    result, findings = _normalize(observation)

    assert findings.vital_sign == "converted"
    assert result["valueQuantity"]["value"] == 83.91
    assert result["valueQuantity"]["code"] == "kg"
    assert result["valueQuantity"]["extension"] == [{"url": ORIGINAL_VALUE_URL, "valueQuantity": quantity}]
    Observation.model_validate(result)


def test_an_hl7_mapped_local_temperature_in_fahrenheit_is_coded_and_converted() -> None:
    # What the HL7 v2 mapping gives for OBX|1|NM|TEMP^Temperature^L||98.6|F|
    observation = _observation(
        code={"coding": [{"system": "L", "code": "TEMP", "display": "Temperature"}], "text": "Temperature"},
        valueQuantity={"value": 98.6, "unit": "F"},
    )
    result, findings = _normalize(observation)
    assert findings.vital_sign == "converted"
    assert _codes(result["code"], LOINC) == ["8310-5"]
    assert (result["valueQuantity"]["value"], result["valueQuantity"]["code"]) == (37.0, "Cel")
    assert findings.unmapped == []


def test_a_stewards_map_codes_a_local_lab_which_is_then_converted() -> None:
    maps = terminology_maps_build(
        [
            *default_map_entries(),
            MapEntry(
                source_slug="clinic",
                local_system="http://clinic.example/lab",
                local_code="GLU",
                standard_system=LOINC,
                standard_code="2345-7",
                standard_display="Glucose [Mass/volume] in Serum or Plasma",
            ),
        ]
    )
    observation = _observation(
        code={"coding": [{"system": "http://clinic.example/lab", "code": "GLU"}]},
        valueQuantity={"value": 7.0, "unit": "mmol/L"},
        interpretation=[{"coding": [{"code": "H"}]}],
    )

    result, findings = resource_terminology_normalize(observation, maps=maps, source_slug="clinic")
    elsewhere, other_findings = resource_terminology_normalize(observation, maps=maps, source_slug="hospital")

    assert _codes(result["code"], LOINC) == ["2345-7"]
    assert result["code"]["coding"][0] == {"system": "http://clinic.example/lab", "code": "GLU"}
    assert findings.lab == "converted"
    assert result["valueQuantity"]["value"] == 126
    assert result["interpretation"] == [{"coding": [{"code": "H"}]}]
    assert findings.unmapped == []
    assert elsewhere == observation
    assert other_findings.unmapped == [
        UnmappedConcept(system="http://clinic.example/lab", code="GLU", display="")
    ]


def test_an_oid_coded_system_gains_the_standard_uri_coding() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c-1",
        "subject": {"reference": "Patient/p-1"},
        "code": {
            "coding": [
                {"system": "urn:oid:2.16.840.1.113883.6.96", "code": "44054006", "display": "Diabetes"}
            ]
        },
    }
    result, findings = _normalize(condition)
    assert result["code"]["coding"][1]["system"] == "http://snomed.info/sct"
    assert result["code"]["coding"][1]["code"] == "44054006"
    assert findings.unmapped == []


def test_a_free_text_alias_is_mapped() -> None:
    observation = _observation(code={"text": "HbA1c"}, valueQuantity={"value": 6.1, "unit": "%"})
    result, findings = _normalize(observation)
    assert _codes(result["code"], LOINC) == ["4548-4"]
    assert findings.unmapped == []


def test_an_unmapped_local_code_and_free_text_are_reported() -> None:
    coded = _observation(code={"coding": [{"system": LOCAL, "code": "X1", "display": "Mystery"}]})
    text_only = {
        "resourceType": "Condition",
        "id": "c-1",
        "subject": {"reference": "Patient/p-1"},
        "code": {"text": "Feeling  Poorly"},
    }
    assert _normalize(coded)[1].unmapped == [UnmappedConcept(system=LOCAL, code="X1", display="Mystery")]
    assert _normalize(text_only)[1].unmapped == [
        UnmappedConcept(system="", code="", display="Feeling  Poorly", alias="feeling poorly")
    ]


def test_lipitor_as_text_gains_the_atorvastatin_ingredient_coding() -> None:
    request = _medication_request({"text": "Lipitor 20 mg tablet"})
    result, findings = _normalize(request)
    assert _codes(result["medicationCodeableConcept"], RXNORM) == ["83367"]
    assert findings.medication is not None
    assert result["medicationCodeableConcept"]["text"] == "Lipitor 20 mg tablet"
    MedicationRequest.model_validate(result)


def test_a_synthea_product_code_gains_its_ingredient_coding() -> None:
    concept = {
        "coding": [{"system": RXNORM, "code": "259255", "display": "Atorvastatin 80 MG Oral Tablet"}],
        "text": "Atorvastatin 80 MG Oral Tablet",
    }
    result, _ = _normalize(_medication_request(concept))
    assert _codes(result["medicationCodeableConcept"], RXNORM) == ["259255", "83367"]


def test_a_contained_medication_gains_the_coding_and_an_unknown_one_is_reported() -> None:
    request = {
        **_medication_request({}),
        "medicationReference": {"reference": "#m1"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "m1",
                "code": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/sid/ndc",
                            "code": "0069-2587-10",
                            "display": "Zocor 20mg",
                        }
                    ]
                },
            }
        ],
    }
    del request["medicationCodeableConcept"]
    result, findings = _normalize(request)
    assert _codes(result["contained"][0]["code"], RXNORM) == ["36567"]
    assert findings.medication is not None

    unknown = copy.deepcopy(request)
    unknown["contained"][0]["code"] = {
        "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "1", "display": "Pill"}]
    }
    _, findings = _normalize(unknown)
    assert findings.medication is None
    assert findings.unmapped == [
        UnmappedConcept(system="http://hl7.org/fhir/sid/ndc", code="1", display="Pill")
    ]


def test_other_resource_types_pass_through_untouched() -> None:
    organization = {"resourceType": "Organization", "id": "o-1", "name": "Clinic"}
    result, findings = resource_terminology_normalize(organization, maps=MAPS)
    assert result is organization
    assert findings.unmapped == []


SYNTHEA = SHARED_DATA / "synthea-r4"
EXAMPLES = SHARED_DATA / "fhir-r4-examples"


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason=f"shared test data is absent ({SYNTHEA})")
def test_synthea_vital_signs_all_coded_and_medications_all_resolved() -> None:
    report = terminology_coverage(fhir_json_files([SYNTHEA]), maps=MAPS)
    assert report.vital_signs > 3000
    assert report.vital_signs_coded == report.vital_signs
    assert report.medications_resolved == report.medications
    assert report.unmapped == {}


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"shared test data is absent ({EXAMPLES})")
def test_shared_data_coverage_meets_the_targets() -> None:
    report = terminology_coverage(fhir_json_files([SYNTHEA, EXAMPLES]), maps=MAPS)
    assert report.vital_signs_coded == report.vital_signs
    assert report.medications_resolved / report.medications >= 0.98
    # Nothing in the unresolved list was guessed: each names no known ingredient.
    assert any("Little Pink Pill" in label for label in report.medications_unresolved)
    assert json.dumps(report.as_dict())
