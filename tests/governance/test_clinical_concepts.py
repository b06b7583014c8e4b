"""Problems and allergies across code systems and free text: the shipped concept table and the grouping rule."""

import csv
from pathlib import Path

import pytest

from governance.policies.clinical_concepts import (
    ALLERGY,
    CONDITION,
    TABLE_PATH,
    clinical_concept_group,
    clinical_concepts_read,
)

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def _coded(system: str, code: str, display: str = "") -> dict[str, object]:
    coding: dict[str, object] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


@pytest.mark.parametrize(
    "concept",
    [
        _coded(SNOMED, "38341003", "Hypertension"),
        _coded(SNOMED, "59621000", "Essential hypertension (disorder)"),
        _coded(ICD10CM, "I10", "Essential (primary) hypertension"),
        _coded("http://hl7.org/fhir/sid/icd-10", "I10"),
        {"text": "High blood pressure"},
        {"text": "HTN"},
        {"coding": [{"system": "urn:oid:1.2.3.4", "code": "HT-01", "display": "Hypertension (disorder)"}]},
    ],
)
def test_hypertension_in_every_form_is_one_group(concept: dict[str, object]) -> None:
    group = clinical_concept_group(concept, kind=CONDITION)

    assert group is not None
    assert (group.key, group.display) == ("condition:hypertension", "Hypertension")


def test_an_icd10_category_covers_the_codes_under_it() -> None:
    specific = clinical_concept_group(_coded(ICD10CM, "E11.65"), kind=CONDITION)
    snomed = clinical_concept_group(_coded(SNOMED, "44054006", "Diabetes"), kind=CONDITION)

    assert specific is not None
    assert snomed is not None
    assert specific.key == snomed.key == "condition:diabetes-type-2"


def test_a_listed_code_with_a_dot_matches_only_itself() -> None:
    group = clinical_concept_group(_coded(ICD10CM, "E78.4", "Other hyperlipidemia"), kind=CONDITION)

    assert group is not None
    assert group.concept is None
    assert group.key == f"{ICD10CM}|E78.4"


def test_allergen_as_substance_as_finding_and_as_text_is_one_group() -> None:
    keys = {
        group.key
        for group in (
            clinical_concept_group(_coded(SNOMED, "764146007", "Penicillin (substance)"), kind=ALLERGY),
            clinical_concept_group(_coded(SNOMED, "91936005", "Allergy to penicillin"), kind=ALLERGY),
            clinical_concept_group({"text": "Penicillins"}, kind=ALLERGY),
            clinical_concept_group({"text": "PCN"}, kind=ALLERGY),
        )
        if group is not None
    }

    assert keys == {"allergy:penicillin"}


def test_conditions_and_allergies_are_looked_up_apart() -> None:
    assert clinical_concept_group({"text": "latex"}, kind=ALLERGY) is not None
    latex_as_condition = clinical_concept_group({"text": "latex"}, kind=CONDITION)

    assert latex_as_condition is not None
    assert latex_as_condition.concept is None
    assert latex_as_condition.key == "text:latex"


def test_unknown_entries_group_by_standard_code_then_text_then_local_code() -> None:
    unknown_snomed = clinical_concept_group(
        {"coding": [{"system": SNOMED, "code": "444814009"}], "text": "Viral sinusitis"}, kind=CONDITION
    )
    text_only = clinical_concept_group({"text": "  Viral   sinusitis (disorder) "}, kind=CONDITION)
    local_only = clinical_concept_group({"coding": [{"system": "urn:local", "code": "X9"}]}, kind=CONDITION)

    assert unknown_snomed is not None
    assert text_only is not None
    assert local_only is not None
    assert (unknown_snomed.key, unknown_snomed.display) == (f"{SNOMED}|444814009", "Viral sinusitis")
    assert text_only.key == "text:viral sinusitis"
    assert local_only.key == "urn:local|X9"
    assert clinical_concept_group({}, kind=CONDITION) is None
    assert clinical_concept_group(None, kind=ALLERGY) is None


def test_the_shipped_table_is_consistent() -> None:
    with TABLE_PATH.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [(row["kind"], row["key"]) for row in rows]
    snomed_codes = [code for row in rows for code in row["snomed"].split(";") if code]

    assert len(rows) > 40
    assert len(keys) == len(set(keys))
    assert len(snomed_codes) == len(set(snomed_codes))
    assert all(row["snomed"] and row["names"] for row in rows)
    assert all(code.isdigit() for code in snomed_codes)


def test_a_table_with_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "concepts.csv"
    table.write_text("kind,key,display,snomed,icd10cm,names\nprocedure,x,X,1,,x\n", encoding="utf-8")

    with pytest.raises(ValueError, match="unknown kind 'procedure'"):
        clinical_concepts_read(table)
