"""The faster FHIR validators (``patients.fhir_validation``) answer exactly as fhir_core's own.

The equivalence test validates the shipped FHIR R4 examples, the entries of a few Synthea bundles, and
mutations of each (a null in a list, a wrong type, a list where one value belongs, a missing element,
a ``resource_type`` key) in this process, with the replacements, and in a fresh interpreter without
them, and requires the same problems for every one.
"""

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from patients import fhir_validation
from patients.fhir import resource_class, resource_validation_problems

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
BUILT_IN: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Lopez", "given": ["Ana"]}],
        "gender": "female",
    },
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "BP"},
        "valueString": "x",
    },
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2020",
    },
]


def _mutations(resource: dict[str, Any], rnd: random.Random) -> list[dict[str, Any]]:
    mutated = []
    keys = sorted(key for key in resource if key != "resourceType")
    for key in rnd.sample(keys, min(3, len(keys))):
        changed = copy.deepcopy(resource)
        value = changed[key]
        if isinstance(value, list):
            changed[key] = [*value, None]
        elif isinstance(value, dict):
            changed[key] = [value]
        elif isinstance(value, str):
            changed[key] = 12
        else:
            changed[key] = "x"
        mutated.append(changed)
        dropped = copy.deepcopy(resource)
        del dropped[key]
        mutated.append(dropped)
    mutated.append({**resource, "resource_type": "Nope"})
    return mutated


def corpus() -> list[dict[str, Any]]:
    """Resources to validate: the shared examples when present, always the built-in ones; mutated."""
    found: list[dict[str, Any]] = list(BUILT_IN)
    files = sorted((SHARED_DATA / "fhir-r4-examples").rglob("*.json"))
    files += sorted((SHARED_DATA / "synthea-r4").glob("*.json"))[:3]
    for path in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(document, dict):
            continue
        found.append(document)
        if document.get("resourceType") == "Bundle":
            found += [
                entry["resource"]
                for entry in document.get("entry") or []
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
            ]
    rnd = random.Random(7)
    return [variant for resource in found for variant in (resource, *_mutations(resource, rnd))]


def corpus_problems() -> list[list[list[str]]]:
    return [
        [list(problem) for problem in resource_validation_problems(resource, path="")]
        for resource in corpus()
    ]


def test_the_replacements_are_installed() -> None:
    assert fhir_validation.installed()
    model = resource_class("Immunization")  # a class built lazily, after the replacements went in
    assert model is not None
    assert model.__pydantic_custom_init__ is False  # each element is validated once, not twice
    validators = model.__pydantic_decorators__.model_validators
    assert validators["reject_null_complex_elements"].func.__func__ is fhir_validation._before
    assert fhir_validation.ElementBase.__dict__["fhir_model_validator"].__func__ is fhir_validation._element


def test_a_nested_element_not_given_as_a_dict_takes_upstreams_checks() -> None:
    from fhir.resources.R4B.coding import Coding
    from fhir.resources.R4B.identifier import Identifier

    built: Any = Patient.model_validate({"maritalStatus": {"coding": [{"code": "M"}]}})
    assert isinstance(built.maritalStatus.coding[0], Coding)  # a dict: built by its own class
    coding = Coding(code="M")
    given: Any = Patient.model_validate({"maritalStatus": {"coding": [coding]}})
    assert given.maritalStatus.coding[0] is coding
    with pytest.raises(ValidationError) as raised:  # an element of another class: upstream's message
        Patient.model_validate({"maritalStatus": {"coding": [Identifier(value="x")]}})
    assert "Value is expected from the instance of Coding" in str(raised.value)
    problems = resource_validation_problems(
        {"resourceType": "Patient", "maritalStatus": {"coding": ["M"]}}, path="Patient"
    )
    assert problems
    assert all(path.startswith("Patient.maritalStatus.coding") for path, _ in problems)


def test_every_resource_gets_the_same_problems_as_with_fhir_core_alone() -> None:
    here = corpus_problems()
    upstream = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from tests.patients.test_fhir_validation import corpus_problems; "
            "from patients import fhir_validation; assert not fhir_validation.installed(); "
            "json.dump(corpus_problems(), sys.stdout)",
        ],
        cwd=ROOT,
        env={**os.environ, "CONCORD_FHIR_FAST_VALIDATION": "false", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(upstream.stdout)
    assert len(here) == len(theirs) >= len(BUILT_IN) * 2
    assert sum(1 for problems in here if problems) > len(here) // 10  # the mutations do fail validation
    differing = [
        index for index, (ours, upstreams) in enumerate(zip(here, theirs, strict=True)) if ours != upstreams
    ]
    assert differing == []


def test_a_null_in_a_list_of_elements_is_refused() -> None:
    problems = resource_validation_problems({"resourceType": "Patient", "identifier": [None]}, path="Patient")
    assert problems == [("Patient.identifier", "None is not allowed as an element of identifier")]


def test_a_wrong_resource_type_is_refused_and_the_callers_data_is_left_alone() -> None:
    data: dict[str, Any] = {"resourceType": "Patient", "id": "p1"}
    assert Patient.model_validate(data).id == "p1"
    assert Patient(**data).id == "p1"
    assert data == {"resourceType": "Patient", "id": "p1"}
    with pytest.raises(ValidationError) as raised:
        Patient.model_validate({"resource_type": "Observation", "id": "p1"})
    assert raised.value.errors()[0]["type"] == "fhir-validation-wrong-resource-type"
    assert "expects resource type ``Patient``" in raised.value.errors()[0]["msg"]


def test_required_elements_and_choice_types_are_still_checked() -> None:
    with pytest.raises(ValidationError, match="status"):
        Observation.model_validate({"resourceType": "Observation", "code": {"text": "BP"}})
    with pytest.raises(ValidationError, match="but got multiple"):
        Observation.model_validate(
            {"status": "final", "code": {"text": "BP"}, "valueString": "a", "valueBoolean": True}
        )


def test_a_number_where_a_url_belongs_is_a_problem_not_a_crash() -> None:
    problems = resource_validation_problems(
        {"resourceType": "Patient", "photo": [{"url": 12}]}, path="Patient"
    )
    assert len(problems) == 1
    assert "a value has a type FHIR does not allow there" in problems[0][1]


def _observation(quantity: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": quantity,
    }


def test_an_element_that_validated_before_is_used_again_only_when_validating_for_problems() -> None:
    fhir_validation._memo.built.clear()
    assert resource_validation_problems(_observation({"value": 70, "unit": "kg"}), path="") == []
    coding_keys = [key for klass, key in fhir_validation._memo.built if klass.__name__ == "Coding"]
    assert coding_keys == [b'{"system":"http://loinc.org","code":"29463-7"}']
    with fhir_validation.memoized():
        first: Any = Observation.model_validate(_observation({"value": 70, "unit": "kg"}))
        second: Any = Observation.model_validate(_observation({"value": 71, "unit": "kg"}))
    assert first.code is second.code  # the same JSON: built once
    assert first.valueQuantity is not second.valueQuantity
    outside = [Observation.model_validate(_observation({"value": 70, "unit": "kg"})) for _ in range(2)]
    assert outside[0].code is not outside[1].code  # models the caller keeps share nothing


def test_a_changed_copy_of_an_element_that_validated_gets_its_own_problems() -> None:
    fhir_validation._memo.built.clear()
    assert resource_validation_problems(_observation({"value": 70, "unit": "kg"}), path="Observation") == []
    problems = resource_validation_problems(_observation({"value": 70, "unit": 12}), path="Observation")
    assert [path for path, _ in problems] == ["Observation.valueQuantity.unit"]
    wrong_code = _observation({"value": 70})
    wrong_code["code"]["coding"][0]["code"] = 29463
    problems = resource_validation_problems(wrong_code, path="Observation")
    assert [path for path, _ in problems] == ["Observation.code.coding[0].code"]


def test_only_plain_short_json_is_a_memo_key() -> None:
    import datetime
    from decimal import Decimal

    class Text(str):
        pass

    assert fhir_validation._memo_key({"code": "x", "value": 1.5}) == b'{"code":"x","value":1.5}'
    assert fhir_validation._memo_key({"value": float("nan")}) is None  # orjson would write null
    assert fhir_validation._memo_key({"value": None}) is None
    assert fhir_validation._memo_key({"value": Decimal("1.5")}) is None
    assert fhir_validation._memo_key({"start": datetime.date(2020, 1, 2)}) is None
    assert fhir_validation._memo_key({"code": Text("x")}) is None
    assert fhir_validation._memo_key({"value": 2**70}) is None
    assert fhir_validation._memo_key({"text": "x" * fhir_validation.MEMO_KEY_BYTES}) is None


def test_the_memo_starts_again_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fhir_validation, "MEMO_ENTRIES", 3)
    fhir_validation._memo.built.clear()
    for code in range(5):
        resource = {"resourceType": "Patient", "maritalStatus": {"coding": [{"code": f"c{code}"}]}}
        assert resource_validation_problems(resource, path="") == []
        assert len(fhir_validation._memo.built) <= 3
