"""The CapabilityStatement served at ``GET /fhir/metadata``, built from the same tables the API parses with,
so that it cannot claim a search parameter the API does not answer (nor omit one it does)."""

from typing import Any

from patients.api.fhir_parameters import (
    CLINICAL_PARAMETERS,
    DEFAULT_COUNT,
    MAX_COUNT,
    PATIENT_PARAMETERS,
    SearchParameter,
)

JSON = dict[str, Any]

FHIR_VERSION = "4.0.1"
# When the statement last changed (FHIR's CapabilityStatement.date): update it with the statement.
STATEMENT_DATE = "2026-11-25"
SOFTWARE_VERSION = "0.1.0"

_PAGING = (
    f"Results are paged: _count (default {DEFAULT_COUNT}, at most {MAX_COUNT}) entries per page, the "
    "Bundle's next link leads to the following page, total counts every match (_total=none skips "
    "counting). Unknown parameters and modifiers are refused with an OperationOutcome (400) unless the "
    "request says Prefer: handling=lenient, when they are ignored and left out of the self link."
)
_CLINICAL_SEARCH = (
    "Searches the stored resources of every source system, of the patients the user may see. Resources are "
    "served as their source stored them (normalized, with standard codings added next to the source's "
    "own) under an id of this server; subject/patient points to the golden Patient, other references are "
    "rewritten to this server's ids, and meta.source names the source system and the record's own type "
    "and id. Sorting: _sort=date or _sort=-date (default: order of storage). " + _PAGING
)
_PUSH = (
    "Source systems only, with their source API token: the resource is stored as that source's record "
    "(kept as sent, validated, normalized, linked by the patient index); the answer is the stored record."
)
_SECURITY = (
    "Staff users authenticate with Authorization: Bearer <API token> (issued with manage.py api_token "
    "USERNAME, listed and revoked in the admin) or a signed-in session. Reads need the access patients "
    "permission (as the patient pages do) and the view patient permission, for every patient or granted per "
    "patient; a patient the user may not see answers as if it did not exist (404) and is left out of "
    "searches. Every patient whose data is returned is recorded in "
    "the access audit. Pushes (create, transaction, batch) authenticate with a source system's API token. "
    "This statement needs no authentication."
)


def _search_params(parameters: tuple[SearchParameter, ...]) -> list[JSON]:
    rendered = []
    for parameter in parameters:
        item: JSON = {
            "name": parameter.name,
            "type": parameter.type,
            "documentation": parameter.documentation,
        }
        if parameter.definition:
            item["definition"] = parameter.definition
        rendered.append(item)
    return rendered


def _patient_resource() -> JSON:
    return {
        "type": "Patient",
        "documentation": (
            "Golden patients: one per real person, built from every linked source record (survivorship "
            "rules, provenance per field). Identifiers of every source record are listed. " + _PAGING
        ),
        "interaction": [
            {
                "code": "read",
                "documentation": "The golden patient; a merged-away id answers with the survivor.",
            },
            {"code": "search-type", "documentation": "Golden patients the user may see."},
            {"code": "create", "documentation": _PUSH},
        ],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": _search_params(PATIENT_PARAMETERS),
        "operation": [
            {
                "name": "match",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
                "documentation": (
                    "POST a Parameters with a 'resource' Patient (and count, onlyCertainMatches): golden "
                    "patients scored by the patient index, with search.score and the match-grade extension. "
                    "Needs the match permission too."
                ),
            },
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                "documentation": (
                    "GET Patient/<id>/$everything: the golden Patient, then every stored resource of every "
                    "source record linked to it (resources referred to but not about the patient, such as "
                    "Practitioner and Organization, are not included), in order of storage, paged with "
                    "_count and the next link (the Patient counts in the first page's _count). _type "
                    "limits the resource types."
                ),
            },
        ],
    }


def _clinical_resource(resource_type: str) -> JSON:
    return {
        "type": resource_type,
        "documentation": _CLINICAL_SEARCH,
        "interaction": [
            {"code": "search-type", "documentation": "Resources of the patients the user may see."},
            {"code": "create", "documentation": _PUSH},
        ],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": _search_params(CLINICAL_PARAMETERS[resource_type]),
    }


def capability_statement(*, base_url: str) -> JSON:
    """What this server does, and only that (FHIR R4, JSON)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": "Concord",
        "kind": "instance",
        "software": {"name": "Concord", "version": SOFTWARE_VERSION},
        "implementation": {"description": "Concord healthcare interoperability hub", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Golden patients and the clinical resources of every source system, read-only for staff; "
                    "source systems push with POST (a Bundle to the base, or one resource of any R4 type to "
                    "its type)."
                ),
                "security": {"cors": False, "description": _SECURITY},
                "resource": [
                    _patient_resource(),
                    *(_clinical_resource(resource_type) for resource_type in CLINICAL_PARAMETERS),
                ],
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": (
                            "POST a transaction Bundle to the base (source API token): stored all or nothing, "
                            "answered with a transaction-response."
                        ),
                    },
                    {
                        "code": "batch",
                        "documentation": (
                            "POST a batch Bundle to the base (source API token): each entry stored or refused "
                            "on its own, answered with a batch-response. Collection and message Bundles are "
                            "accepted too and answered with an OperationOutcome."
                        ),
                    },
                ],
            }
        ],
    }
