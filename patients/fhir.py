"""The only module that builds or parses ``fhir.resources`` objects (R4 payloads read with the R4B package).

Everything else in Concord handles FHIR as plain JSON dicts.
"""

from collections.abc import Iterable
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

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
        model.model_validate(resource)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            message = detail.get("msg", "invalid value")
            problems.append((_location(path, detail.get("loc", ())), str(message)))
        return problems or [(path, str(error))]
    except (ValueError, TypeError) as error:
        return [(path, str(error))]
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
