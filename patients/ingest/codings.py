"""The search codings of stored resources (``ResourceCoding``), written with the resources themselves.

``SourceResource.code`` is the first coding of the main concept; terminology normalization adds standard
codings after the source's own (LOINC for vital signs, RxNorm ingredients for medications, mapped local
codes), so a search by a standard code must see every coding. Categories are kept the same way.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from django.db import connection

from patients.models import ResourceCoding, SourceResource

JSON = dict[str, Any]

# Where each searchable resource type keeps what its `code` search parameter matches.
CODE_PATHS: dict[str, tuple[str, ...]] = {
    "Observation": ("code",),
    "Condition": ("code",),
    "MedicationRequest": ("medicationCodeableConcept", "#medication"),
    "Encounter": ("type",),
    "AllergyIntolerance": ("code", "reaction.substance"),
    "Immunization": ("vaccineCode",),
}
CODING_INDEXED_TYPES = frozenset(CODE_PATHS)
# AllergyIntolerance.category is a bare code; stored with the system of its value set.
ALLERGY_CATEGORY_SYSTEM = "http://hl7.org/fhir/allergy-intolerance-category"

_SYSTEM_MAX = ResourceCoding._meta.get_field("system").max_length or 200
_CODE_MAX = ResourceCoding._meta.get_field("code").max_length or 100


class StoredRow(Protocol):
    @property
    def pk(self) -> int | None: ...
    @property
    def resource_type(self) -> str: ...
    @property
    def source_record_id(self) -> str: ...
    @property
    def resource(self) -> JSON: ...


def _concepts(value: Any) -> Iterable[JSON]:
    for concept in value if isinstance(value, list) else [value]:
        if isinstance(concept, dict):
            yield concept


def _codings(concepts: Iterable[JSON]) -> Iterable[tuple[str, str]]:
    for concept in concepts:
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str) and coding["code"]:
                yield str(coding.get("system") or "")[:_SYSTEM_MAX], coding["code"][:_CODE_MAX]


def _contained_medication(resource: JSON) -> JSON | None:
    """The contained Medication a medication request names with ``medicationReference: #id``, if any."""
    reference = (resource.get("medicationReference") or {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("#"):
        return None
    for item in resource.get("contained") or []:
        if (
            isinstance(item, dict)
            and item.get("resourceType") == "Medication"
            and item.get("id") == reference[1:]
        ):
            return item
    return None


def _code_concepts(resource: JSON, path: str) -> Iterable[JSON]:
    if path == "#medication":
        # A contained Medication is part of the request; its code (or, without one, its ingredients,
        # which normalization codes) is what the request prescribes.
        medication = _contained_medication(resource)
        if medication is not None:
            yield from _concepts(medication.get("code"))
            for ingredient in _concepts(medication.get("ingredient")):
                yield from _concepts(ingredient.get("itemCodeableConcept"))
        return
    head, _, tail = path.partition(".")
    if not tail:
        yield from _concepts(resource.get(head))
        return
    for item in _concepts(resource.get(head)):
        yield from _concepts(item.get(tail))


def resource_search_codings(resource: JSON) -> list[tuple[str, str, str]]:
    """(element, system, code) of every coding the code and category search parameters match, no repeats."""
    paths = CODE_PATHS.get(str(resource.get("resourceType")), ())
    found: dict[tuple[str, str, str], None] = {}
    for path in paths:
        for system, code in _codings(_code_concepts(resource, path)):
            found[(ResourceCoding.Element.CODE, system, code)] = None
    categories = resource.get("category")
    if resource.get("resourceType") == "AllergyIntolerance":
        for code in categories if isinstance(categories, list) else []:
            if isinstance(code, str) and code:
                found[(ResourceCoding.Element.CATEGORY, ALLERGY_CATEGORY_SYSTEM, code[:_CODE_MAX])] = None
    elif paths:
        for system, code in _codings(_concepts(categories)):
            found[(ResourceCoding.Element.CATEGORY, system, code)] = None
    return list(found)


def _codings_insert(rows: Iterable[tuple[int, JSON]]) -> None:
    """Insert the codings of (resource pk, resource) pairs: COPY on PostgreSQL, else bulk_create."""
    codings = [
        (pk, element, system, code)
        for pk, resource in rows
        for element, system, code in resource_search_codings(resource)
    ]
    if not codings:
        return
    if connection.vendor != "postgresql":
        ResourceCoding.objects.bulk_create(
            [
                ResourceCoding(resource_id=pk, element=element, system=system, code=code)
                for pk, element, system, code in codings
            ],
            batch_size=2000,
        )
        return
    table = connection.ops.quote_name(ResourceCoding._meta.db_table)
    # Identifiers are the model's own table and column names, never input.
    statement = f"COPY {table} (resource_id, element, system, code) FROM STDIN"
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(statement) as copy,
    ):
        for coding in codings:
            copy.write_row(coding)


def resource_codings_replace(rows: Sequence[SourceResource]) -> None:
    """Write again the codings of stored rows whose resource changed (a new version, a re-normalization)."""
    indexed = [row for row in rows if row.resource_type in CODING_INDEXED_TYPES]
    if not indexed:
        return
    ResourceCoding.objects.filter(resource_id__in=[row.pk for row in indexed]).delete()
    _codings_insert((row.pk, row.resource) for row in indexed)


def resource_codings_store(*, created: Sequence[StoredRow], changed: Sequence[SourceResource]) -> None:
    """The codings of a payload's new rows (inserted with their ids) and of its changed rows. Called by
    storage in the payload's transaction."""
    resource_codings_replace(changed)
    _codings_insert(
        (row.pk, row.resource)
        for row in created
        if row.resource_type in CODING_INDEXED_TYPES and row.pk is not None
    )
