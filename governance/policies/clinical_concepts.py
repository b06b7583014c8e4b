"""Problems and allergies across sources: which coded or written-out entries name the same condition or allergen.

One source codes hypertension in SNOMED CT (38341003), another in ICD-10-CM (I10), a third writes
"high blood pressure". The project's own table (`data/clinical_concepts.csv`) lists, per concept, its
SNOMED CT codes, its ICD-10-CM codes (a three-character category such as "E11" stands for every code
under it: E11.9, E11.65, ...) and the names it is written as. An entry is grouped by the first of:
a coding of the table, a name of the table (compared as terminology aliases are, SNOMED's semantic tag
such as "(disorder)" dropped), its first standard coding, its text. The table is a starting point, not a
crosswalk: a steward maps a source's local code to SNOMED CT with a terminology map, and the added
coding groups it.
"""

import csv
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from governance.policies.terminology import alias_normalize, is_standard_system

TABLE_PATH = Path(__file__).resolve().parent / "data" / "clinical_concepts.csv"
SNOMED_SYSTEM = "http://snomed.info/sct"
ICD10CM_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10")
CONDITION, ALLERGY = "condition", "allergy"
_SEMANTIC_TAG = re.compile(r"\s*\((disorder|finding|situation|substance|morphologic abnormality)\)\s*$")


@dataclass(frozen=True)
class ClinicalConcept:
    kind: str
    key: str
    display: str


@dataclass(frozen=True)
class ConceptGroup:
    """What an entry is grouped by: a table concept (``concept`` set) or its own code or text."""

    key: str
    display: str
    concept: ClinicalConcept | None = None


@dataclass
class ClinicalConceptTable:
    by_coding: dict[tuple[str, str, str], ClinicalConcept] = field(default_factory=dict)
    by_icd10_category: dict[tuple[str, str], ClinicalConcept] = field(default_factory=dict)
    by_name: dict[tuple[str, str], ClinicalConcept] = field(default_factory=dict)


def _split(cell: str) -> list[str]:
    return [item.strip() for item in cell.split(";") if item.strip()]


def clinical_concepts_read(path: Path = TABLE_PATH) -> ClinicalConceptTable:
    table = ClinicalConceptTable()
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            kind = row["kind"].strip()
            if kind not in (CONDITION, ALLERGY):
                raise ValueError(f"{path.name}: unknown kind {kind!r} for {row['key']!r}")
            concept = ClinicalConcept(kind, row["key"].strip(), row["display"].strip())
            for code in _split(row["snomed"]):
                table.by_coding[(kind, SNOMED_SYSTEM, code)] = concept
            for code in _split(row["icd10cm"]):
                if "." in code:
                    for system in ICD10CM_SYSTEMS:
                        table.by_coding[(kind, system, code)] = concept
                else:
                    table.by_icd10_category[(kind, code)] = concept
            for name in [row["display"], *_split(row["names"])]:
                table.by_name[(kind, alias_normalize(name))] = concept
    return table


@cache
def clinical_concepts_default() -> ClinicalConceptTable:
    return clinical_concepts_read()


def _name_key(text: str) -> str:
    return alias_normalize(_SEMANTIC_TAG.sub("", text))


def clinical_concept_group(
    concept: dict[str, Any] | None, *, kind: str, table: ClinicalConceptTable | None = None
) -> ConceptGroup | None:
    """The group of a Condition.code or AllergyIntolerance.code; None when it has neither code nor text."""
    table = table or clinical_concepts_default()
    concept = concept or {}
    codings = [coding for coding in concept.get("coding") or [] if isinstance(coding, dict)]
    for coding in codings:
        system, code = str(coding.get("system") or ""), str(coding.get("code") or "").strip()
        if not code:
            continue
        found = table.by_coding.get((kind, system, code))
        if found is None and system in ICD10CM_SYSTEMS:
            found = table.by_icd10_category.get((kind, code.split(".")[0].upper()))
        if found is not None:
            return ConceptGroup(f"{kind}:{found.key}", found.display, found)
    texts = [concept.get("text"), *(coding.get("display") for coding in codings)]
    names = [text for text in texts if isinstance(text, str) and text.strip()]
    for text in names:
        found = table.by_name.get((kind, _name_key(text)))
        if found is not None:
            return ConceptGroup(f"{kind}:{found.key}", found.display, found)
    for coding in codings:
        if is_standard_system(coding.get("system")) and coding.get("code"):
            display = next(iter(names), str(coding["code"]))
            return ConceptGroup(f"{coding['system']}|{coding['code']}", display)
    if names:
        return ConceptGroup(f"text:{_name_key(names[0])}", names[0].strip())
    for coding in codings:
        if coding.get("code"):
            return ConceptGroup(f"{coding.get('system') or ''}|{coding['code']}", str(coding["code"]))
    return None
