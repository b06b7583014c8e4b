"""What the FHIR read API serves, as plain JSON: stored source resources in the API's id space, and
searchset Bundles with their paging links.

A stored resource keeps the id its source gave it, unique only within that source; the API serves it under
a stable UUID derived from (source, type, source id), rewrites its references the same way (so a Bundle's
resources point at each other) and points every Patient reference at the golden patient. Where it came
from stays visible: ``meta.source`` names the source system and the record's own type and id, and a
``meta.tag`` names the source system for display.
"""

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

JSON = dict[str, Any]

SOURCE_TAG_SYSTEM = "https://concord.example.org/fhir/CodeSystem/source-system"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://concord.example.org/fhir/source-resource")
_RELATIVE_REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[^/?#]+)(?:/_history/[^/]+)?$")


def source_system_uri(source_slug: str) -> str:
    """The URI of a source system (also the identifier system of its CSV records)."""
    return f"urn:concord:source:{source_slug}"


def served_resource_id(*, source_slug: str, resource_type: str, source_record_id: str) -> str:
    """The id a source's resource has in the API: the same every time, distinct across sources."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{source_slug}/{resource_type}/{source_record_id}"))


def _reference_rewrite(reference: JSON, *, source_slug: str, golden_patients: Mapping[str, str]) -> JSON:
    target = reference.get("reference")
    match = _RELATIVE_REFERENCE.match(target) if isinstance(target, str) else None
    if match is None:  # contained (#id), absolute and urn references are left as they are
        return reference
    resource_type, record_id = match["type"], match["id"]
    if resource_type != "Patient":
        target_id = served_resource_id(
            source_slug=source_slug, resource_type=resource_type, source_record_id=record_id
        )
        return {**reference, "reference": f"{resource_type}/{target_id}"}
    golden = golden_patients.get(record_id)
    if golden is not None:
        return {**reference, "reference": f"Patient/{golden}"}
    # A patient record the index has not linked: named by its identifier in the source, not by a guess.
    rewritten = {key: value for key, value in reference.items() if key != "reference"}
    rewritten["type"] = "Patient"
    rewritten["identifier"] = {"system": source_system_uri(source_slug), "value": record_id}
    return rewritten


def _references_rewrite(value: Any, *, source_slug: str, golden_patients: Mapping[str, str]) -> Any:
    if isinstance(value, list):
        return [
            _references_rewrite(item, source_slug=source_slug, golden_patients=golden_patients)
            for item in value
        ]
    if not isinstance(value, dict):
        return value
    rewritten = {
        key: _references_rewrite(item, source_slug=source_slug, golden_patients=golden_patients)
        for key, item in value.items()
    }
    if isinstance(rewritten.get("reference"), str):
        return _reference_rewrite(rewritten, source_slug=source_slug, golden_patients=golden_patients)
    return rewritten


def patient_reference_ids(resource: JSON) -> set[str]:
    """Source ids of every Patient a stored resource refers to (its subject, and any other)."""
    found: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            target = value.get("reference")
            match = _RELATIVE_REFERENCE.match(target) if isinstance(target, str) else None
            if match is not None and match["type"] == "Patient":
                found.add(match["id"])
            for item in value.values():
                visit(item)

    visit(resource)
    return found


def served_resource(
    *,
    resource: JSON,
    resource_type: str,
    source_record_id: str,
    source_slug: str,
    source_name: str,
    version: int,
    last_updated: datetime,
    golden_patients: Mapping[str, str],
) -> JSON:
    """A stored source resource as the API serves it (see the module docstring).

    ``golden_patients`` maps the source's patient ids to golden patient ids.
    """
    served: JSON = _references_rewrite(resource, source_slug=source_slug, golden_patients=golden_patients)
    served["id"] = served_resource_id(
        source_slug=source_slug, resource_type=resource_type, source_record_id=source_record_id
    )
    meta = dict(served.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = last_updated.isoformat()
    meta["source"] = f"{source_system_uri(source_slug)}#{resource_type}/{source_record_id}"
    tags = [tag for tag in meta.get("tag") or [] if tag.get("system") != SOURCE_TAG_SYSTEM]
    meta["tag"] = [*tags, {"system": SOURCE_TAG_SYSTEM, "code": source_slug, "display": source_name}]
    served["meta"] = meta
    return {
        "resourceType": resource_type,
        **{key: value for key, value in served.items() if key != "resourceType"},
    }


def searchset_bundle(
    *,
    resources: Sequence[JSON],
    base_url: str,
    self_url: str,
    next_url: str = "",
    total: int | None = None,
    mode: str = "match",
) -> JSON:
    """A searchset Bundle: ``total`` when counted, self and next links, entries with absolute full URLs."""
    bundle: JSON = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    bundle["link"] = links
    entries = []
    for resource in resources:
        entry: JSON = {
            "fullUrl": f"{base_url}{resource['resourceType']}/{resource['id']}",
            "resource": resource,
        }
        if mode:
            entry["search"] = {"mode": mode}
        entries.append(entry)
    if entries:
        bundle["entry"] = entries
    return bundle
