"""The only module that builds or parses ``fhir.resources`` objects (R4 payloads read with the R4B package).

Everything else in Concord handles FHIR as plain JSON dicts.
"""

from collections.abc import Iterable
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from patients.fhir_validation import memoized

JSON = dict[str, Any]

BUNDLE_TYPES_ACCEPTED = ("transaction", "batch", "collection", "message")


@cache
def resource_class(resource_type: str) -> Any | None:
    """The R4B model class of a resource type, or None when the type does not exist in FHIR R4."""
    if not resource_type or not resource_type[0].isupper():
        return None
    try:
        model = get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError):
        return None
    # get_fhir_model_class also answers for data types (HumanName, ...), which are not resources.
    if not (isinstance(model, type) and issubclass(model, Resource)):
        return None
    return model


def is_resource_type(resource_type: str) -> bool:
    return resource_class(resource_type) is not None


def _location(prefix: str, location: Iterable[object]) -> str:
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "__root__":
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def resource_validation_problems(resource: JSON, *, path: str) -> list[tuple[str, str]]:
    """Strict R4 validation of one resource. Returns (field path, message) pairs; empty when valid."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return [(path, "has no resourceType: this is not a FHIR resource")]
    model = resource_class(resource_type)
    if model is None:
        return [(f"{path}.resourceType", f"unknown FHIR R4 resource type {resource_type!r}")]
    try:
        with memoized():  # the model is thrown away, so its elements may be ones validated before
            model.model_validate(resource)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            message = detail.get("msg", "invalid value")
            problems.append((_location(path, detail.get("loc", ())), str(message)))
        return problems or [(path, str(error))]
    except (ValueError, TypeError) as error:
        return [(path, str(error))]
    except (
        Exception
    ) as error:  # fhir_core trips over some wrong types (a number as a url): invalid, not a crash
        return [(path, f"a value has a type FHIR does not allow there ({type(error).__name__}: {error})")]
    return []


def operation_outcome(issues: Iterable[tuple[str, str, str, str]]) -> JSON:
    """An OperationOutcome from (severity, code, diagnostics, expression) tuples; expression may be ""."""
    rendered = []
    for severity, code, diagnostics, expression in issues:
        entry: JSON = {"severity": severity, "code": code, "diagnostics": diagnostics}
        if expression:
            entry["expression"] = [expression]
        rendered.append(entry)
    return {"resourceType": "OperationOutcome", "issue": rendered}


def bundle_response(*, bundle_type: str, entries: list[JSON]) -> JSON:
    """A transaction-response or batch-response Bundle."""
    return {"resourceType": "Bundle", "type": f"{bundle_type}-response", "entry": entries}


MATCH_GRADE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/match-grade"
LANGUAGE_SYSTEM = "urn:ietf:bcp:47"


def golden_patient_resource(
    *, external_id: str, is_active: bool, record: JSON, last_updated: str | None, replaces: Iterable[str] = ()
) -> JSON:
    """The golden record as a FHIR R4 Patient (the survivorship winners, every identifier of every source)."""
    resource: JSON = {"resourceType": "Patient", "id": external_id, "active": is_active}
    if last_updated:
        resource["meta"] = {"lastUpdated": last_updated}
    identifiers = [
        {key: item[key] for key in ("use", "system", "value") if item.get(key)}
        for item in record.get("identifiers") or []
        if item.get("use") != "old"
    ]
    if identifiers:
        resource["identifier"] = identifiers
    name = record.get("name")
    if name:
        resource["name"] = [{"use": "official", **name}]
    telecom = []
    for field in ("phone", "email"):
        chosen = record.get(field)
        if chosen:
            telecom.append({**chosen, "rank": 1})
    chosen_values = {str(item.get("value")).lower() for item in telecom}
    for point in record.get("telecom") or []:
        if str(point.get("value")).lower() not in chosen_values and point.get("system"):
            telecom.append({key: point[key] for key in ("system", "value", "use") if point.get(key)})
    if telecom:
        resource["telecom"] = telecom
    if record.get("gender"):
        resource["gender"] = record["gender"]
    if record.get("birth_date"):
        resource["birthDate"] = record["birth_date"]
    deceased = record.get("deceased")
    if isinstance(deceased, bool):
        resource["deceasedBoolean"] = deceased
    elif isinstance(deceased, str):
        resource["deceasedDateTime"] = deceased
    if record.get("address"):
        resource["address"] = [record["address"]]
    if record.get("preferred_language"):
        resource["communication"] = [
            {
                "language": {"coding": [{"system": LANGUAGE_SYSTEM, "code": record["preferred_language"]}]},
                "preferred": True,
            }
        ]
    links = [{"other": {"reference": f"Patient/{other}"}, "type": "replaces"} for other in replaces]
    if links:
        resource["link"] = links
    return resource


def match_bundle(entries: Iterable[tuple[JSON, float, str]], *, base_url: str) -> JSON:
    """A searchset Bundle of $match results: (Patient, score, match grade) each."""
    rendered = [
        {
            "fullUrl": f"{base_url}Patient/{resource['id']}",
            "resource": resource,
            "search": {
                "mode": "match",
                "score": round(score, 6),
                "extension": [{"url": MATCH_GRADE_EXTENSION, "valueCode": grade}],
            },
        }
        for resource, score, grade in entries
    ]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(rendered), "entry": rendered}


def match_input_patient(body: Any) -> tuple[JSON | None, dict[str, Any], list[tuple[str, str]]]:
    """The Patient of a $match request (a Parameters resource, or a bare Patient), its options, problems."""
    if not isinstance(body, dict):
        return None, {}, [("", "the body must be a FHIR Parameters or Patient resource in JSON")]
    options: dict[str, Any] = {}
    patient: Any = body
    if body.get("resourceType") == "Parameters":
        patient = None
        for parameter in body.get("parameter") or []:
            if not isinstance(parameter, dict):
                continue
            if parameter.get("name") == "resource":
                patient = parameter.get("resource")
            elif parameter.get("name") == "onlyCertainMatches":
                options["only_certain"] = parameter.get("valueBoolean") is True
            elif parameter.get("name") == "count":
                options["count"] = parameter.get("valueInteger")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return (
            None,
            options,
            [("Parameters.parameter", "give the Patient to match in a 'resource' parameter")],
        )
    problems = resource_validation_problems(patient, path="Patient")
    return (None if problems else patient), options, problems
