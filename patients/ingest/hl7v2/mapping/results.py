"""ORU: DiagnosticReport (OBR) and Observation (OBX)."""

from patients.ingest.entries import JSON, Problem
from patients.ingest.hl7v2 import codes
from patients.ingest.hl7v2.mapping.common import (
    COMPARATORS,
    REFERENCE_BOUND,
    REFERENCE_RANGE,
    UCUM_SYSTEM_IDS,
    UCUM_UNITS,
    MessageMapping,
    codeable_concept,
    entity_identifier,
    identifier_key,
    number_parse,
    stable_id,
)
from patients.ingest.hl7v2.parse import Composite, Segment


def _quantity(value: int | float, unit: Composite) -> JSON:
    quantity: JSON = {"value": value}
    code = unit.get(1)
    if code:
        # Quantity.unit is for people (CWE-2 text when sent), Quantity.code for machines.
        quantity["unit"] = unit.get(2) or code
        # Only a unit that is UCUM gets the UCUM system: a local unit ("beats/min") stays display text.
        if unit.get(3).upper() in UCUM_SYSTEM_IDS or code in UCUM_UNITS:
            quantity["system"] = "http://unitsofmeasure.org"
            quantity["code"] = code
    return quantity


def _observation_value(mapping: MessageMapping, obx: Segment) -> JSON:
    """OBX-5 by its value type OBX-2; an empty or unsupported value gives no value element."""
    value_type = obx.get(2).upper()
    values = obx.repetitions(5)
    if not values:
        return {}
    first = values[0]
    unit = obx.first(6)
    if value_type == "NM":
        number = number_parse(first.get(1))
        if number is None:
            mapping.problems.append(
                Problem(mapping.location(obx, 5), "value type NM but the value is not a number")
            )
            return {}
        return {"valueQuantity": _quantity(number, unit)}
    if value_type in {"ST", "TX", "FT"}:
        return {"valueString": "\n".join(composite.text() for composite in values)}
    if value_type in {"CE", "CWE", "CNE", "CF"}:
        concept = codeable_concept(first)
        return {"valueCodeableConcept": concept} if concept else {}
    if value_type in {"DT", "TS", "DTM"}:
        moment = mapping.datetime(obx, 5)
        return {"valueDateTime": moment} if moment else {}
    if value_type == "SN":
        return _structured_numeric(mapping, obx, first, unit)
    return {}


def _structured_numeric(mapping: MessageMapping, obx: Segment, value: Composite, unit: Composite) -> JSON:
    """SN: comparator^number^separator/suffix^number (e.g. >^100, ^1^:^128, ^10^-^20)."""
    comparator, separator = value.get(1), value.get(3)
    first, second = number_parse(value.get(2)), number_parse(value.get(4))
    if first is None or (value.get(4) and second is None) or comparator not in COMPARATORS | {"", "="}:
        mapping.problems.append(
            Problem(mapping.location(obx, 5), "value type SN but the value is not a structured numeric")
        )
        return {}
    if second is not None and separator in {":", "/"}:
        return {"valueRatio": {"numerator": {"value": first}, "denominator": {"value": second}}}
    if second is not None and separator in {"-", ""}:
        return {"valueRange": {"low": _quantity(first, unit), "high": _quantity(second, unit)}}
    quantity = _quantity(first, unit)
    if comparator in COMPARATORS:
        quantity["comparator"] = comparator
    return {"valueQuantity": quantity}


def _reference_range(text: str, unit: Composite) -> JSON | None:
    if not text.strip():
        return None
    between = REFERENCE_RANGE.match(text)
    if between:
        low, high = number_parse(between.group("low")), number_parse(between.group("high"))
        if low is not None and high is not None:
            return {"low": _quantity(low, unit), "high": _quantity(high, unit)}
    bound = REFERENCE_BOUND.match(text)
    if bound:
        number = number_parse(bound.group("value"))
        if number is not None:
            return {"high" if bound.group("comparator").startswith("<") else "low": _quantity(number, unit)}
    return {"text": text.strip()}


def observation_map(
    mapping: MessageMapping,
    obx: Segment,
    *,
    patient_url: str,
    encounter_url: str | None,
    report_key: str,
    occurrence: int,
    effective: str | None,
) -> str:
    code = codeable_concept(obx.first(3)) or {"text": "unspecified observation"}
    code_key = obx.get(3) or obx.get(3, 2)
    if report_key:
        observation_id = stable_id("Observation", report_key, code_key, obx.get(4), str(occurrence))
    else:
        observation_id = stable_id(
            "Observation", mapping.control_id, str(mapping.message.number), str(obx.position)
        )
    status_code = obx.get(11).upper()
    observation: JSON = {
        "resourceType": "Observation",
        "id": observation_id,
        "status": codes.OBSERVATION_STATUSES.get(status_code, "unknown"),
        "code": code,
        "subject": {"reference": patient_url},
    }
    if encounter_url:
        observation["encounter"] = {"reference": encounter_url}
    observed_at = mapping.datetime(obx, 14) or effective
    if observed_at:
        observation["effectiveDateTime"] = observed_at
    observation.update(_observation_value(mapping, obx))
    interpretations = []
    for composite in obx.repetitions(8):
        flag = composite.get(1)
        if flag:
            coding: JSON = {"code": flag}
            if flag.upper() in codes.INTERPRETATIONS:
                coding["system"] = codes.INTERPRETATION_SYSTEM
            interpretations.append({"coding": [coding]})
    if interpretations:
        observation["interpretation"] = interpretations
    reference_range = _reference_range(obx.first(7).text() if obx.repetitions(7) else "", obx.first(6))
    if reference_range:
        observation["referenceRange"] = [reference_range]
    return mapping.add(observation, segment=obx)


def report_map(
    mapping: MessageMapping, obr: Segment, *, patient_url: str, encounter_url: str | None
) -> tuple[JSON, str]:
    order = entity_identifier(obr.first(3)) or entity_identifier(obr.first(2))
    if order is not None:
        report_key = "|".join(identifier_key(order))
        report_id = stable_id("DiagnosticReport", report_key)
    else:
        report_key = ""
        report_id = stable_id(
            "DiagnosticReport", mapping.control_id, str(mapping.message.number), str(obr.position)
        )
    report: JSON = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "status": codes.REPORT_STATUSES.get(obr.get(25).upper(), "unknown"),
        "code": codeable_concept(obr.first(4)) or {"text": "unspecified report"},
        "subject": {"reference": patient_url},
    }
    if order is not None:
        report["identifier"] = [order]
    if encounter_url:
        report["encounter"] = {"reference": encounter_url}
    effective = mapping.datetime(obr, 7)
    if effective:
        report["effectiveDateTime"] = effective
    return report, report_key
