"""Terminology coverage over FHIR files: vital signs with LOINC + UCUM, medications resolved to ingredients.

Reads FHIR R4 JSON files (single resources or Bundles, nested Bundles included), normalizes every resource
the way ingestion does, and counts. Used by the `terminology_report` command and the coverage tests.
"""

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governance.policies.terminology import TerminologyMaps
from governance.policies.vital_signs import LOINC_SYSTEM, UCUM_SYSTEM
from patients.normalize import (
    MEDICATION_RESOURCE_TYPES,
    patient_resource_normalize,
    resource_datetimes_normalize,
    resource_terminology_normalize,
)

VITAL_SIGN_CATEGORIES = frozenset({"vital-signs", "vital-sign"})


@dataclass
class CoverageReport:
    files: int = 0
    resources: int = 0
    vital_signs: int = 0
    vital_signs_coded: int = 0
    vital_signs_text_unreadable: int = 0
    vital_signs_not_coded: list[str] = field(default_factory=list)
    medications: int = 0
    medications_resolved: int = 0
    medications_fuzzy: int = 0
    medications_with_ingredient_code: int = 0
    medications_reference_only: int = 0
    medications_unresolved: list[str] = field(default_factory=list)
    labs_unit_normalized: int = 0
    unmapped: Counter[str] = field(default_factory=Counter)
    seconds_base: float = 0.0
    seconds_terminology: float = 0.0

    def percent(self, part: int, whole: int) -> float:
        return round(100.0 * part / whole, 2) if whole else 100.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "resources": self.resources,
            "vital_signs": {
                "total": self.vital_signs,
                "coded_loinc_ucum": self.vital_signs_coded,
                "percent": self.percent(self.vital_signs_coded, self.vital_signs),
                "text_unreadable": self.vital_signs_text_unreadable,
                "not_coded": self.vital_signs_not_coded,
            },
            "medications": {
                "total": self.medications,
                "resolved_to_ingredient": self.medications_resolved,
                "percent": self.percent(self.medications_resolved, self.medications),
                "with_ingredient_rxnorm_code": self.medications_with_ingredient_code,
                "by_fuzzy_name": self.medications_fuzzy,
                "reference_to_outside_medication": self.medications_reference_only,
                "unresolved": self.medications_unresolved,
            },
            "labs_unit_normalized": self.labs_unit_normalized,
            "unmapped": dict(self.unmapped.most_common()),
            "seconds": {"base_normalization": self.seconds_base, "terminology": self.seconds_terminology},
        }


def _resources_in(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict) or "resourceType" not in document:
        return
    yield document
    if document["resourceType"] == "Bundle":
        for entry in document.get("entry") or []:
            if isinstance(entry, dict):
                yield from _resources_in(entry.get("resource"))


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [coding for coding in concept.get("coding") or [] if isinstance(coding, dict)]


def _is_vital_sign(observation: dict[str, Any], outcome: str) -> bool:
    if outcome:
        return True
    return any(
        coding.get("code") in VITAL_SIGN_CATEGORIES
        for category in observation.get("category") or []
        for coding in _codings(category)
    )


def _has_loinc(concept: Any) -> bool:
    return any(coding.get("system") == LOINC_SYSTEM and coding.get("code") for coding in _codings(concept))


def _is_ucum(quantity: Any) -> bool:
    return isinstance(quantity, dict) and quantity.get("system") == UCUM_SYSTEM and bool(quantity.get("code"))


def vital_sign_is_coded(observation: dict[str, Any]) -> bool:
    """LOINC on the code and on every component's code; every quantity in UCUM."""
    if not _has_loinc(observation.get("code")):
        return False
    if "valueQuantity" in observation and not _is_ucum(observation["valueQuantity"]):
        return False
    if "valueString" in observation:
        return False
    for component in observation.get("component") or []:
        if not _has_loinc(component.get("code")):
            return False
        if "valueQuantity" in component and not _is_ucum(component["valueQuantity"]):
            return False
    return True


def _label(resource: dict[str, Any], path: Path) -> str:
    return f"{path.name}: {resource.get('resourceType')}/{resource.get('id', '?')}"


def _concept_label(concept: Any) -> str:
    if not isinstance(concept, dict):
        return "(no code)"
    texts = [concept.get("text"), *(coding.get("display") for coding in _codings(concept))]
    return next((text for text in texts if isinstance(text, str)), "(no text)")


def _medication_concept(resource: dict[str, Any]) -> Any:
    if "medicationCodeableConcept" in resource:
        return resource["medicationCodeableConcept"]
    reference = (resource.get("medicationReference") or {}).get("reference", "")
    for item in resource.get("contained") or []:
        if isinstance(item, dict) and f"#{item.get('id')}" == reference:
            return item.get("code")
    return (resource.get("medicationReference") or {}).get("display")


def terminology_coverage(paths: Iterable[Path], *, maps: TerminologyMaps) -> CoverageReport:
    report = CoverageReport()
    for path in paths:
        report.files += 1
        document = json.loads(path.read_bytes())
        for resource in _resources_in(document):
            report.resources += 1
            started = time.perf_counter()
            if resource["resourceType"] == "Patient":
                resource = patient_resource_normalize(resource)
            resource = resource_datetimes_normalize(resource)
            middle = time.perf_counter()
            normalized, findings = resource_terminology_normalize(resource, maps=maps)
            report.seconds_base += middle - started
            report.seconds_terminology += time.perf_counter() - middle
            resource_type = resource["resourceType"]
            for unmapped in findings.unmapped:
                report.unmapped[f"{resource_type} {unmapped.system}|{unmapped.code} {unmapped.display}"] += 1
            if findings.lab in ("converted", "unit-coded"):
                report.labs_unit_normalized += 1
            if resource_type == "Observation" and _is_vital_sign(resource, findings.vital_sign):
                report.vital_signs += 1
                if vital_sign_is_coded(normalized):
                    report.vital_signs_coded += 1
                else:
                    report.vital_signs_not_coded.append(f"{_label(resource, path)} ({findings.vital_sign})")
                if findings.vital_sign == "text-unreadable":
                    report.vital_signs_text_unreadable += 1
            if resource_type in MEDICATION_RESOURCE_TYPES:
                report.medications += 1
                if findings.medication is not None:
                    report.medications_resolved += 1
                    report.medications_fuzzy += findings.medication.method == "fuzzy-name"
                    report.medications_with_ingredient_code += any(
                        ingredient.rxnorm_code for ingredient in findings.medication.ingredients
                    )
                else:
                    report.medications_reference_only += findings.medication_reference_only
                    report.medications_unresolved.append(
                        f"{_label(resource, path)}: {_concept_label(_medication_concept(resource))}"
                    )
    report.seconds_base = round(report.seconds_base, 3)
    report.seconds_terminology = round(report.seconds_terminology, 3)
    return report


def fhir_json_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.json")) if path.is_dir() else [path])
    return found
