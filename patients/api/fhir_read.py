"""The FHIR read API: ``metadata``, Patient search and ``$everything``, and search of the clinical resources.

Staff authenticate with an API token (``Authorization: Bearer``) or their session; what they get is what the
patient pages would show them, and every patient whose data is returned is recorded in the access audit.
"""

import re
from typing import Any
from urllib.parse import urlencode

from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.audit import phi_access_record, phi_access_record_many
from core.models import AccessEvent
from patients.api.fhir_bundles import patient_reference_ids, searchset_bundle, served_resource
from patients.api.fhir_capability import capability_statement
from patients.api.fhir_parameters import (
    CLINICAL_PARAMETERS,
    PATIENT_PARAMETERS,
    SEARCHABLE_TYPES,
    ParsedSearch,
    SearchError,
    search_parse,
)
from patients.api.fhir_patient import CanAccessPatients, FhirUserApi
from patients.api.fhir_search import (
    golden_ids_of_records,
    golden_patients_any_visible,
    golden_patients_replaced_ids,
    patient_everything,
    patient_search,
    resource_search,
)
from patients.fhir import golden_patient_resource, is_resource_type, operation_outcome
from patients.models import Patient, SourceResource
from patients.selectors import golden_patient_get

JSON = dict[str, Any]


class CanViewPatients(BasePermission):
    """Searching needs the view patient permission, for every patient or granted on some."""

    message = "Reading patients needs the view patient permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return golden_patients_any_visible(user=request.user)


def _is_lenient(request: Request) -> bool:
    """Whether the request prefers ``handling=lenient``.

    RFC 7240 separates preferences with commas (repeated Prefer headers arrive joined the same way) and
    allows a quoted value and spaces around "="; a semicolon starts a preference's parameters, which this
    API has always accepted too (``return=minimal; handling=lenient``), so both separators count.
    """
    for part in re.split(r"[,;]", request.headers.get("Prefer", "")):
        name, _, value = part.partition("=")
        if name.strip().lower() == "handling" and value.strip().strip('"').lower() == "lenient":
            return True
    return False


def _parameters(request: Request) -> list[tuple[str, str]]:
    return [(name, value) for name, values in request.query_params.lists() for value in values]


class FhirReadApi(FhirUserApi):
    """Search errors answer 400 (or 406 for a format other than JSON) with an OperationOutcome."""

    permission_classes = [IsAuthenticated, CanAccessPatients, CanViewPatients]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, SearchError):
            http_status = (
                status.HTTP_406_NOT_ACCEPTABLE if exc.parameter == "_format" else status.HTTP_400_BAD_REQUEST
            )
            return Response(
                operation_outcome([("error", exc.code, exc.message, exc.parameter)]), status=http_status
            )
        return super().handle_exception(exc)

    def base_url(self) -> str:
        return self.request.build_absolute_uri("/fhir/")

    def links(self, search: ParsedSearch, *, next_cursor: str) -> tuple[str, str]:
        """The self link (the parameters the answer used) and the next link ("" on the last page)."""
        path = self.request.build_absolute_uri(self.request.path)
        used = list(search.used)
        self_url = f"{path}?{urlencode(used)}" if used else path
        if not next_cursor:
            return self_url, ""
        following = [(name, value) for name, value in used if name != "_cursor"] + [("_cursor", next_cursor)]
        return self_url, f"{path}?{urlencode(following)}"

    def served(self, rows: list[SourceResource]) -> list[JSON]:
        """Stored rows (annotated with their golden patient) as the API serves them."""
        others = {
            (row.source_id, record_id)
            for row in rows
            for record_id in patient_reference_ids(row.resource)
            if record_id != row.patient_source_id
        }
        by_source: dict[int, dict[str, str]] = {}
        for (source_id, record_id), patient_id in golden_ids_of_records(pairs=others).items():
            by_source.setdefault(source_id, {})[record_id] = patient_id
        resources = []
        for row in rows:
            golden_patients = {
                **by_source.get(row.source_id, {}),
                row.patient_source_id: str(row.golden_external_id),  # type: ignore[attr-defined]
            }
            resources.append(
                served_resource(
                    resource=row.resource,
                    resource_type=row.resource_type,
                    source_record_id=row.source_record_id,
                    source_slug=row.source.slug,
                    source_name=row.source.name,
                    version=row.version,
                    last_updated=row.updated_at,
                    golden_patients=golden_patients,
                )
            )
        return resources


def _golden_resource(patient: Patient, replaces: list[str]) -> JSON:
    return golden_patient_resource(
        external_id=str(patient.external_id),
        is_active=patient.is_active,
        record=patient.record,
        last_updated=patient.computed_at.isoformat() if patient.computed_at else None,
        replaces=replaces,
    )


def _format_check(request: Request) -> None:
    for value in request.query_params.getlist("_format"):
        if value not in ("json", "application/json", "application/fhir+json", "application/json+fhir"):
            raise SearchError("only JSON is served (_format=json)", parameter="_format", code="not-supported")


class MetadataApi(FhirReadApi):
    """``GET /fhir/metadata``: public, as FHIR clients read it before they authenticate; holds no data."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        _format_check(request)
        return Response(capability_statement(base_url=self.base_url()))


class PatientSearchApi(FhirReadApi):
    def get(self, request: Request, resource_type: str = "Patient") -> Response:
        search = search_parse(
            _parameters(request), parameters=PATIENT_PARAMETERS, lenient=_is_lenient(request)
        )
        page = patient_search(user=request.user, search=search)
        replaced = golden_patients_replaced_ids(page.rows)
        phi_access_record_many(
            purpose="FHIR Patient search",
            request=request,
            patient_refs=[patient.external_id for patient in page.rows],
            action=AccessEvent.Action.SEARCH,
        )
        self_url, next_url = self.links(search, next_cursor=page.next_cursor)
        return Response(
            searchset_bundle(
                resources=[_golden_resource(patient, replaced.get(patient.pk, [])) for patient in page.rows],
                base_url=self.base_url(),
                self_url=self_url,
                next_url=next_url,
                total=page.total,
            )
        )


class ResourceSearchApi(FhirReadApi):
    """Search of one clinical resource type (``resource_type`` comes from the URL)."""

    def get(self, request: Request, resource_type: str) -> Response:
        parameters = CLINICAL_PARAMETERS.get(resource_type)
        if parameters is None:
            raise exceptions.NotFound(f"{resource_type} cannot be searched here")
        search = search_parse(
            _parameters(request), parameters=parameters, sortable=True, lenient=_is_lenient(request)
        )
        page = resource_search(user=request.user, resource_type=resource_type, search=search)
        phi_access_record_many(
            purpose=f"FHIR {resource_type} search",
            request=request,
            patient_refs=list(dict.fromkeys(str(row.golden_external_id) for row in page.rows)),  # type: ignore[attr-defined]
            action=AccessEvent.Action.SEARCH,
        )
        self_url, next_url = self.links(search, next_cursor=page.next_cursor)
        return Response(
            searchset_bundle(
                resources=self.served(page.rows),
                base_url=self.base_url(),
                self_url=self_url,
                next_url=next_url,
                total=page.total,
            )
        )


class PatientEverythingApi(FhirReadApi):
    """``GET /fhir/Patient/<id>/$everything``: the golden patient, then every linked source resource, paged."""

    # Like the Patient read: a patient the user may not see is not found, whatever else they may see.
    permission_classes = [IsAuthenticated, CanAccessPatients]

    def get(self, request: Request, external_id: Any) -> Response:
        search = search_parse(
            _parameters(request), parameters=(), with_types=True, lenient=_is_lenient(request)
        )
        patient = golden_patient_get(user=request.user, external_id=external_id)
        if patient is None:
            return Response(
                operation_outcome([("error", "not-found", f"Patient/{external_id} is not known", "")]),
                status=status.HTTP_404_NOT_FOUND,
            )
        page = patient_everything(patient=patient, search=search)
        phi_access_record(
            purpose="FHIR Patient $everything", request=request, patient_ref=patient.external_id
        )
        resources = self.served(page.rows)
        if search.cursor is None and search.count > 0:
            replaced = golden_patients_replaced_ids([patient]).get(patient.pk, [])
            resources.insert(0, _golden_resource(patient, replaced))
        self_url, next_url = self.links(search, next_cursor=page.next_cursor)
        return Response(
            searchset_bundle(
                resources=resources,
                base_url=self.base_url(),
                self_url=self_url,
                next_url=next_url,
                total=None if page.total is None else page.total + 1,
                mode="",
            )
        )


def _not_found(message: str, *, code: str) -> Response:
    return Response(operation_outcome([("error", code, message, "")]), status=status.HTTP_404_NOT_FOUND)


class UnroutedRequestApi(FhirUserApi):
    """Any request under ``/fhir/`` that no other route answers: an OperationOutcome, never Django's HTML 404
    page nor the push endpoint's source-token challenge (a GET of ``/fhir/<Type>`` reaches this, a POST the
    push). Authenticated and permission-checked like the reads: only then does it say what it is missing."""

    def get(self, request: Request, resource_type: str = "", unmatched: str = "") -> Response:
        path = unmatched or resource_type
        first, _, rest = path.partition("/")
        if first != "Patient" and first not in SEARCHABLE_TYPES and is_resource_type(first):
            message = f"{first} is not served here; the CapabilityStatement (metadata) lists what is"
            return _not_found(message, code="not-supported")
        if first in SEARCHABLE_TYPES and rest:
            message = f"{first} cannot be read by id here, only searched (GET {first}?...)"
            return _not_found(message, code="not-supported")
        return _not_found(f"{path} is not known", code="not-found")

    post = put = patch = delete = get
