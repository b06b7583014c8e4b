"""Golden patients over FHIR: ``GET /fhir/Patient/<id>`` and ``POST /fhir/Patient/$match``.

Staff (API token or session) with the patient permissions; every patient returned is recorded as a PHI read.
"""

import json
from typing import Any

from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiTokenAuthentication, ApiView
from core.audit import phi_access_record
from core.models import AccessEvent
from patients.api.fhir_push import FhirJsonRenderer
from patients.fhir import golden_patient_resource, match_bundle, match_input_patient, operation_outcome
from patients.models import Patient
from patients.selectors import golden_patient_get, golden_patient_replaced_ids, golden_patients_match

MAX_MATCH_COUNT = 50
DEFAULT_MATCH_COUNT = 10


def _outcome(http_status: int, code: str, diagnostics: str, expression: str = "") -> Response:
    return Response(operation_outcome([("error", code, diagnostics, expression)]), status=http_status)


def golden_resource(patient: Patient) -> dict[str, Any]:
    return golden_patient_resource(
        external_id=str(patient.external_id),
        is_active=patient.is_active,
        record=patient.record,
        last_updated=patient.computed_at.isoformat() if patient.computed_at else None,
        replaces=golden_patient_replaced_ids(patient),
    )


class JsonRenderer(FhirJsonRenderer):
    """The same FHIR JSON for clients that ask for plain application/json."""

    media_type = "application/json"
    format = "json"


class CanAccessPatients(BasePermission):
    """The permission every patient page requires (``PermissionRequiredMixin``): the API grants no more than
    the pages do, so a user kept out of the Patients area cannot read the same data over FHIR."""

    message = "The FHIR API needs the access patients permission, as the patient pages do."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user.has_perm("patients.access_patients"))


class FhirUserApi(ApiView):
    """FHIR answers for staff (API token or session): OperationOutcome for every error, never an HTML page."""

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, CanAccessPatients]
    renderer_classes = [FhirJsonRenderer, JsonRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            response = _outcome(status.HTTP_401_UNAUTHORIZED, "login", str(exc.detail))
            # RFC 6750 section 3: a request that presented no credentials gets the bare challenge, one whose
            # bearer token was refused (unknown, revoked, malformed) is told so with error="invalid_token".
            challenge = 'Bearer realm="concord-fhir"'
            if isinstance(exc, exceptions.AuthenticationFailed):
                challenge += ', error="invalid_token"'
            response["WWW-Authenticate"] = challenge
            return response
        if isinstance(exc, exceptions.PermissionDenied):
            return _outcome(status.HTTP_403_FORBIDDEN, "forbidden", str(exc.detail))
        if isinstance(exc, exceptions.APIException):
            return _outcome(exc.status_code, "processing", str(exc.detail))
        return super().handle_exception(exc)


class PatientReadApi(FhirUserApi):
    def get(self, request: Request, external_id: Any) -> Response:
        patient = golden_patient_get(user=request.user, external_id=external_id)
        if patient is None:
            return _outcome(status.HTTP_404_NOT_FOUND, "not-found", f"Patient/{external_id} is not known")
        phi_access_record(purpose="FHIR Patient read", request=request, patient_ref=patient.external_id)
        return Response(golden_resource(patient))


class PatientMatchApi(FhirUserApi):
    def post(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"null")
        except (UnicodeDecodeError, ValueError) as error:
            return _outcome(status.HTTP_400_BAD_REQUEST, "structure", f"the body is not JSON: {error}")
        patient, options, problems = match_input_patient(body)
        if patient is None:
            path, message = problems[0]
            return _outcome(status.HTTP_400_BAD_REQUEST, "invalid", message, path)
        count = options.get("count") or DEFAULT_MATCH_COUNT
        if not isinstance(count, int) or not 1 <= count <= MAX_MATCH_COUNT:
            return _outcome(
                status.HTTP_400_BAD_REQUEST, "invalid", f"count must be 1 to {MAX_MATCH_COUNT}", "count"
            )
        if not (
            request.user.has_perm("patients.match_patient") and request.user.has_perm("patients.view_patient")
        ):
            return _outcome(
                status.HTTP_403_FORBIDDEN, "forbidden", "matching patients needs the match permission"
            )
        found = golden_patients_match(user=request.user, resource=patient)
        if options.get("only_certain"):
            found = [(golden, result) for golden, result in found if result.grade == "certain"]
        found = found[:count]
        for golden, _ in found:
            phi_access_record(
                purpose="FHIR Patient $match",
                request=request,
                patient_ref=golden.external_id,
                action=AccessEvent.Action.SEARCH,
            )
        base_url = request.build_absolute_uri("/fhir/")
        return Response(
            match_bundle(
                ((golden_resource(golden), result.probability, result.grade) for golden, result in found),
                base_url=base_url,
            )
        )
