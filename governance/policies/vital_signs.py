"""Vital-sign terminology policy: LOINC coding, UCUM units and free-text blood pressure.

The table is the project's own `data/vital_signs.csv` (one row per accepted unit of a vital sign):
canonical value = (source value + offset) * factor, rounded to `decimals` when a conversion happened.
Facts come from the Synthea LOINC codes seen, the FHIR R4 vital-signs profiles and their UCUM value set.

Decisions the ingestion side relies on:
- The input dict is never modified; every result is a deep copy.
- The LOINC coding is added next to the source's own codings; code.text and source codings stay.
- A free-text blood pressure becomes a panel (85354-9) with systolic and diastolic components in mm[Hg].
  The FHIR blood-pressure profile forbids Observation.value[x], so a valueString is moved to a new
  Observation.note; a reading found in a note stays in that note.
- Nothing is guessed: an unreadable text or an unknown unit gives "text-unreadable" with the
  observation unchanged, so it can be routed to review.
"""

import csv
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from core.json_copy import json_copy

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"

BP_PANEL_CODES = ("85354-9", "55284-4")
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"

OUTCOME_ALREADY_CODED = "already-coded"
OUTCOME_CODED = "coded"
OUTCOME_CONVERTED = "converted"
OUTCOME_TEXT_UNREADABLE = "text-unreadable"
OUTCOME_NOT_A_VITAL_SIGN = "not-a-vital-sign"

SYSTOLIC_RANGE = (50, 300)
DIASTOLIC_RANGE = (20, 200)

TABLE_PATH = Path(__file__).resolve().parent / "data" / "vital_signs.csv"

# "B/P" holds a slash of its own; it is removed before slash-separated numbers are looked for.
_BP_LABEL_WITH_SLASH = re.compile(r"\bb\s*/\s*p\b", re.IGNORECASE)
# Every run of numbers joined by slashes ("120/80", "12/08/2020", "98.6/37"): exactly one run of
# exactly two whole numbers is a reading; anything else is ambiguous.
_SLASH_RUN = re.compile(r"\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)+")
_BP_MENTION = re.compile(r"\b(?:bp|b\s*/\s*p|nibp|blood\s+pressure)\b", re.IGNORECASE)


@dataclass(frozen=True)
class UnitConversion:
    ucum_code: str
    offset: Fraction
    factor: Fraction
    decimals: int | None

    @property
    def is_identity(self) -> bool:
        return self.offset == 0 and self.factor == 1


@dataclass(frozen=True)
class VitalSign:
    loinc_code: str
    display: str
    canonical_unit: str
    local_names: frozenset[str] = field(default_factory=frozenset)
    units: dict[str, UnitConversion] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_blood_pressure_panel(self) -> bool:
        return self.loinc_code in BP_PANEL_CODES


@dataclass(frozen=True)
class VitalSignTable:
    by_loinc_code: dict[str, VitalSign]
    by_local_name: dict[str, VitalSign]


def _name_normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9%]+", " ", text.lower()).split())


def _unit_normalize(text: str) -> str:
    return "".join(text.split()).lower()


def vital_sign_table_load(path: Path = TABLE_PATH) -> VitalSignTable:
    rows: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            code = row["loinc_code"].strip()
            entry = rows.setdefault(
                code,
                {
                    "display": row["display"].strip(),
                    "unit": row["canonical_unit"].strip(),
                    "names": set(),
                    "units": {},
                },
            )
            entry["names"].update(
                _name_normalize(name) for name in row["local_names"].split(";") if name.strip()
            )
            if not row["unit_ucum"].strip():
                continue
            decimals = row["decimals"].strip()
            conversion = UnitConversion(
                ucum_code=row["unit_ucum"].strip(),
                offset=Fraction(row["offset"].strip()),
                factor=Fraction(row["factor"].strip()),
                decimals=int(decimals) if decimals else None,
            )
            for spelling in row["unit_spellings"].split(";"):
                if spelling.strip():
                    entry["units"][_unit_normalize(spelling)] = conversion
    by_loinc_code: dict[str, VitalSign] = {}
    by_local_name: dict[str, VitalSign] = {}
    for code, entry in rows.items():
        vital = VitalSign(code, entry["display"], entry["unit"], frozenset(entry["names"]), entry["units"])
        by_loinc_code[code] = vital
        for name in vital.local_names:
            if name in by_local_name:
                raise ValueError(
                    f"Local name {name!r} names both {by_local_name[name].loinc_code} and {code}."
                )
            by_local_name[name] = vital
    return VitalSignTable(by_loinc_code=by_loinc_code, by_local_name=by_local_name)


@cache
def _table() -> VitalSignTable:
    return vital_sign_table_load()


def blood_pressure_parse(text: str) -> tuple[int, int] | None:
    """Read one systolic/diastolic reading from free text, or None when it is not unambiguous."""
    runs = _SLASH_RUN.findall(_BP_LABEL_WITH_SLASH.sub(" ", text))
    if len(runs) != 1:
        return None
    parts = [part.strip() for part in runs[0].split("/")]
    if len(parts) != 2 or not all(part.isdigit() and len(part) <= 3 for part in parts):
        return None
    systolic, diastolic = int(parts[0]), int(parts[1])
    if not SYSTOLIC_RANGE[0] <= systolic <= SYSTOLIC_RANGE[1]:
        return None
    if not DIASTOLIC_RANGE[0] <= diastolic <= DIASTOLIC_RANGE[1]:
        return None
    if systolic <= diastolic:
        return None
    return systolic, diastolic


def _codings(concept: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((concept or {}).get("coding") or [])


def _vital_by_loinc(concept: dict[str, Any] | None) -> VitalSign | None:
    for coding in _codings(concept):
        if coding.get("system") == LOINC_SYSTEM and coding.get("code") in _table().by_loinc_code:
            return _table().by_loinc_code[coding["code"]]
    return None


def _vital_by_local_name(concept: dict[str, Any] | None) -> VitalSign | None:
    """The vital sign that code.text and the non-LOINC displays name; None when they name none or several."""
    texts = [(concept or {}).get("text")]
    texts += [coding.get("display") for coding in _codings(concept) if coding.get("system") != LOINC_SYSTEM]
    found = {
        _table().by_local_name[name].loinc_code: _table().by_local_name[name]
        for name in (_name_normalize(text) for text in texts if isinstance(text, str))
        if name in _table().by_local_name
    }
    return next(iter(found.values())) if len(found) == 1 else None


def _has_loinc_coding(concept: dict[str, Any] | None) -> bool:
    return any(coding.get("system") == LOINC_SYSTEM for coding in _codings(concept))


def _loinc_coding(vital: VitalSign) -> dict[str, str]:
    return {"system": LOINC_SYSTEM, "code": vital.loinc_code, "display": vital.display}


def _concept_code_add(concept: dict[str, Any], vital: VitalSign) -> None:
    concept["coding"] = [*_codings(concept), _loinc_coding(vital)]


def _decimal_round(value: Fraction, decimals: int) -> float:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def _quantity_normalize(quantity: dict[str, Any], vital: VitalSign) -> dict[str, Any] | None:
    """The quantity in the canonical UCUM unit, or None when its value or unit cannot be read."""
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    spellings = [quantity.get("unit")]
    if quantity.get("system") in (None, UCUM_SYSTEM):
        spellings.insert(0, quantity.get("code"))
    conversion = next(
        (
            vital.units[_unit_normalize(spelling)]
            for spelling in spellings
            if isinstance(spelling, str) and _unit_normalize(spelling) in vital.units
        ),
        None,
    )
    if conversion is None:
        return None
    normalized = dict(quantity)
    if not conversion.is_identity:
        canonical = (Fraction(str(value)) + conversion.offset) * conversion.factor
        normalized["value"] = _decimal_round(
            canonical, conversion.decimals if conversion.decimals is not None else 2
        )
    normalized.update(unit=vital.canonical_unit, system=UCUM_SYSTEM, code=vital.canonical_unit)
    return normalized


def _category_add(observation: dict[str, Any]) -> None:
    categories = list(observation.get("category") or [])
    if any(
        coding.get("system") == CATEGORY_SYSTEM and coding.get("code") == "vital-signs"
        for category in categories
        for coding in _codings(category)
    ):
        return
    categories.append(
        {"coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs", "display": "Vital Signs"}]}
    )
    observation["category"] = categories


def _blood_pressure_component(code: str, value: int) -> dict[str, Any]:
    vital = _table().by_loinc_code[code]
    return {
        "code": {"coding": [_loinc_coding(vital)], "text": vital.display},
        "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM_SYSTEM, "code": "mm[Hg]"},
    }


def _blood_pressure_text(observation: dict[str, Any]) -> str:
    if isinstance(observation.get("valueString"), str):
        return str(observation["valueString"])
    # Several notes are read together, so two readings in two notes stay ambiguous.
    return " ".join(
        note["text"] for note in observation.get("note") or [] if isinstance(note.get("text"), str)
    )


def _components_normalize(observation: dict[str, Any]) -> tuple[bool, bool] | None:
    """(coding added, unit converted) over the components, or None when a component cannot be read."""
    coded = converted = False
    for component in observation.get("component") or []:
        concept = component.setdefault("code", {})
        vital = _vital_by_loinc(concept)
        if vital is None:
            vital = _vital_by_local_name(concept)
            if vital is None:
                continue
            _concept_code_add(concept, vital)
            coded = True
        quantity = component.get("valueQuantity")
        if quantity is None:
            continue
        normalized = _quantity_normalize(quantity, vital)
        if normalized is None:
            return None
        if normalized != quantity:
            component["valueQuantity"] = normalized
            converted = True
    return coded, converted


def vital_sign_candidate(observation: dict[str, Any]) -> bool:
    """Whether vital_sign_normalize could find a vital sign here: a cheap test that copies nothing.

    Callers that normalize every Observation use it to skip the policy's deep copies for the others.
    """
    concept = observation.get("code")
    if _vital_by_loinc(concept) is not None or _vital_by_local_name(concept) is not None:
        return True
    value_text = observation.get("valueString")
    return (
        not _has_loinc_coding(concept)
        and isinstance(value_text, str)
        and bool(_BP_MENTION.search(value_text))
    )


def vital_sign_normalize(observation: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return a new FHIR R4 Observation with LOINC coding and canonical UCUM units, and the outcome."""
    result = json_copy(observation)
    concept = result.setdefault("code", {})
    vital = _vital_by_loinc(concept)
    was_coded = vital is not None
    if vital is None:
        vital = _vital_by_local_name(concept)
    if vital is None:
        value_text = result.get("valueString")
        if (
            _has_loinc_coding(concept)
            or not isinstance(value_text, str)
            or not _BP_MENTION.search(value_text)
        ):
            return json_copy(observation), OUTCOME_NOT_A_VITAL_SIGN
        vital = _table().by_loinc_code[BP_PANEL_CODES[0]]

    coded = not was_coded
    converted = False
    if vital.is_blood_pressure_panel and not result.get("component"):
        reading = blood_pressure_parse(_blood_pressure_text(result))
        if reading is None:
            return json_copy(observation), OUTCOME_TEXT_UNREADABLE
        result["component"] = [
            _blood_pressure_component(SYSTOLIC, reading[0]),
            _blood_pressure_component(DIASTOLIC, reading[1]),
        ]
        if "valueString" in result:
            result["note"] = [*(result.get("note") or []), {"text": result.pop("valueString")}]
        coded = True
    elif "valueString" in result:
        return json_copy(observation), OUTCOME_TEXT_UNREADABLE
    elif "valueQuantity" in result:
        normalized = _quantity_normalize(result["valueQuantity"], vital)
        if normalized is None:
            return json_copy(observation), OUTCOME_TEXT_UNREADABLE
        converted = normalized != result["valueQuantity"]
        result["valueQuantity"] = normalized

    components = _components_normalize(result)
    if components is None:
        return json_copy(observation), OUTCOME_TEXT_UNREADABLE
    coded = coded or components[0]
    converted = converted or components[1]

    if not was_coded:
        _concept_code_add(concept, vital)
    _category_add(result)
    if converted:
        return result, OUTCOME_CONVERTED
    if coded:
        return result, OUTCOME_CODED
    return result, OUTCOME_ALREADY_CODED
