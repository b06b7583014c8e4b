"""Laboratory terminology policy: UCUM units and conversion to each analyte's canonical unit.

The table is the project's own `data/labs.csv`: per LOINC code, the canonical unit (the row without a
factor: the conventional US unit the shared Synthea data uses) and the other units that analyte can be
reported in, with `si_factor` = value in that unit / value in the canonical unit. The factors come from the
shared labunits facts where it lists the analyte, otherwise from the molar mass named in `fact_source`.

Only an Observation already carrying a LOINC coding of the table is touched (local codes reach LOINC through
the terminology maps first). A value in another known unit is converted, together with its reference
range, so the interpretation flags (kept as sent) and the range still agree; an unknown unit leaves the
observation as it is. The original quantity is kept in an extension on the converted one.
"""

import csv
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
ORIGINAL_VALUE_URL = "https://concord.example.org/fhir/StructureDefinition/original-value"
TABLE_PATH = Path(__file__).resolve().parent / "data" / "labs.csv"

OUTCOME_NOT_A_LAB = "not-a-lab"
OUTCOME_CANONICAL = "canonical"
OUTCOME_CONVERTED = "converted"
OUTCOME_UNIT_CODED = "unit-coded"  # same value, unit now written as UCUM
OUTCOME_UNKNOWN_UNIT = "unknown-unit"
OUTCOME_NO_QUANTITY = "no-quantity"


@dataclass(frozen=True)
class LabUnit:
    ucum_code: str
    si_factor: Decimal | None  # None for the canonical unit
    decimals: int


@dataclass(frozen=True)
class LabAnalyte:
    loinc_code: str
    display: str
    canonical_unit: str
    units: dict[str, LabUnit]


def _unit_key(text: str) -> str:
    return "".join(text.split()).lower().replace("μ", "µ")


def lab_table_load(path: Path = TABLE_PATH) -> dict[str, LabAnalyte]:
    analytes: dict[str, LabAnalyte] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            code = row["loinc_code"].strip()
            factor = row["si_factor"].strip()
            unit = LabUnit(
                ucum_code=row["unit_ucum"].strip(),
                si_factor=Decimal(factor) if factor else None,
                decimals=int(row["decimals"]) if row["decimals"].strip() else 2,
            )
            if code not in analytes:
                if unit.si_factor is not None:
                    raise ValueError(f"{code}: the first row must be the canonical unit (no factor).")
                analytes[code] = LabAnalyte(code, row["display"].strip(), unit.ucum_code, {})
            for spelling in [unit.ucum_code, *row["unit_spellings"].split(";")]:
                if spelling.strip():
                    analytes[code].units[_unit_key(spelling)] = unit
    return analytes


@cache
def lab_table() -> dict[str, LabAnalyte]:
    return lab_table_load()


def lab_analyte(concept: dict[str, Any] | None) -> LabAnalyte | None:
    table = lab_table()
    for coding in (concept or {}).get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == LOINC_SYSTEM and coding.get("code") in table:
            return table[coding["code"]]
    return None


def _unit_of(quantity: dict[str, Any], analyte: LabAnalyte) -> LabUnit | None:
    spellings = [quantity.get("unit")]
    if quantity.get("system") in (None, UCUM_SYSTEM):
        spellings.insert(0, quantity.get("code"))
    for spelling in spellings:
        if isinstance(spelling, str) and _unit_key(spelling) in analyte.units:
            return analyte.units[_unit_key(spelling)]
    return None


def lab_quantity_convert(quantity: dict[str, Any], analyte: LabAnalyte) -> dict[str, Any] | None:
    """The quantity in the analyte's canonical UCUM unit, or None when its unit is not one the table knows."""
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    unit = _unit_of(quantity, analyte)
    if unit is None:
        return None
    converted = {key: item for key, item in quantity.items() if key != "extension"}
    if unit.si_factor is not None:
        exact = Decimal(str(value)) / unit.si_factor
        rounded = exact.quantize(Decimal(1).scaleb(-unit.decimals), rounding=ROUND_HALF_UP)
        converted["value"] = int(rounded) if unit.decimals == 0 else float(rounded)
    converted.update(unit=analyte.canonical_unit, system=UCUM_SYSTEM, code=analyte.canonical_unit)
    if converted == {key: item for key, item in quantity.items() if key != "extension"}:
        return quantity
    original = {key: item for key, item in quantity.items() if key != "extension"}
    extensions = [item for item in quantity.get("extension") or [] if item.get("url") != ORIGINAL_VALUE_URL]
    converted["extension"] = [*extensions, {"url": ORIGINAL_VALUE_URL, "valueQuantity": original}]
    return converted


def lab_observation_normalize(observation: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return the Observation with its quantity (and reference range) in the canonical unit, and the outcome.

    The input is not modified; an unchanged observation is returned as the same object.
    """
    analyte = lab_analyte(observation.get("code"))
    if analyte is None:
        return observation, OUTCOME_NOT_A_LAB
    quantity = observation.get("valueQuantity")
    if not isinstance(quantity, dict):
        return observation, OUTCOME_NO_QUANTITY
    converted = lab_quantity_convert(quantity, analyte)
    if converted is None:
        return observation, OUTCOME_UNKNOWN_UNIT
    if converted is quantity:
        return observation, OUTCOME_CANONICAL
    ranges = []
    for reference in observation.get("referenceRange") or []:
        reference = dict(reference)
        for bound in ("low", "high"):
            if isinstance(reference.get(bound), dict):
                # A bound in a unit the table does not know stays as sent rather than being dropped.
                reference[bound] = lab_quantity_convert(reference[bound], analyte) or reference[bound]
        ranges.append(reference)
    result = {**observation, "valueQuantity": converted}
    if ranges:
        result["referenceRange"] = ranges
    return result, OUTCOME_CONVERTED if converted["value"] != quantity["value"] else OUTCOME_UNIT_CODED
