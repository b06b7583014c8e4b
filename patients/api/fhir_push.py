"""FHIR R4 push: ``POST /fhir/`` (Bundle) and ``POST /fhir/<Type>`` (one resource), authenticated by a source token.

The body is landed (stored exactly as sent) before anything parses it. The answer is what FHIR servers
answer: a transaction-response or batch-response Bundle with per-entry status, the stored resource for
a single create, or an OperationOutcome with diagnostics; errors are 4xx, never 500.
"""

import logging
from typing import Any

from django.http import HttpRequest
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiView
from patients.fhir import bundle_response, operation_outcome
from patients.ingest.entries import Problem
from patients.ingest.processing import ProcessOutcome, max_payload_bytes, payload_process, payload_receive
from patients.models import InboundPayload, Source
from patients.selectors import source_for_token, stored_resource_get

logger = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024


class FhirJsonRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"
    charset = "utf-8"


class SourceTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <source token>``; the authenticated party is the source, not a person."""

    def authenticate(self, request: Request) -> tuple[Any, Source] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <source API token>'.")
        source = source_for_token(header[1].decode("latin-1"))
        if source is None:
            raise exceptions.AuthenticationFailed("The API token is not valid for any active source.")
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser(), source

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="concord-fhir"'


class IsSource(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, Source)


def _outcome_response(http_status: int, code: str, diagnostics: str, expression: str = "") -> Response:
    return Response(operation_outcome([("error", code, diagnostics, expression)]), status=http_status)


def _issue(problem: Problem) -> tuple[str, str, str, str]:
    """A problem as an OperationOutcome issue: FHIR paths go in expression, file positions in the text."""
    if not problem.location or problem.location.startswith(("line ", "byte ")):
        return ("error", "structure", str(problem), "")
    return ("error", "invalid", problem.message, problem.location)


def _problems_response(outcome: ProcessOutcome) -> Response:
    issues = [_issue(problem) for problem in outcome.payload_problems()]
    http_status = (
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if outcome.payload.size > max_payload_bytes() else 400
    )
    return Response(operation_outcome(issues), status=http_status)


class FhirPushApi(ApiView):
    authentication_classes = [SourceTokenAuthentication]
    permission_classes = [IsSource]
    renderer_classes = [FhirJsonRenderer]
    parser_classes: list[Any] = []

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            response = _outcome_response(401, "login", str(exc.detail))
            response["WWW-Authenticate"] = self.get_authenticate_header(self.request)
            return response
        if isinstance(exc, exceptions.MethodNotAllowed):
            return _outcome_response(405, "not-supported", str(exc.detail))
        if isinstance(exc, exceptions.APIException):
            return _outcome_response(exc.status_code, "processing", str(exc.detail))
        logger.exception("FHIR push failed")
        return _outcome_response(
            400, "exception", "The request could not be processed; it was kept for review."
        )

    def _read_body(self, request: Request) -> bytes | None:
        """The raw body, or None when it is beyond twice the payload limit (then it is not kept)."""
        django_request: HttpRequest = request._request
        hard_cap = 2 * max_payload_bytes()
        chunks, size = [], 0
        while chunk := django_request.read(READ_CHUNK):
            size += len(chunk)
            if size > hard_cap:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def post(self, request: Request, resource_type: str = "") -> Response:
        source = request.auth
        if not isinstance(source, Source):  # IsSource already refused anything else
            raise exceptions.NotAuthenticated()
        body = self._read_body(request)
        if body is None:
            return _outcome_response(
                413, "too-costly", f"The body is over {2 * max_payload_bytes():,} bytes."
            )
        payload, _ = payload_receive(
            source=source,
            body=body,
            format=InboundPayload.Format.FHIR,
            channel=InboundPayload.Channel.API,
            content_type=request.content_type or "",
            origin=request.path,
            options={"resource_type": resource_type} if resource_type else {},
            enqueue=False,
        )
        # FHIR clients expect the outcome in the answer, so API pushes are processed in the request.
        outcome = payload_process(payload_id=payload.pk)
        return self._answer(outcome, single=resource_type not in {"", "Bundle"})

    def _answer(self, outcome: ProcessOutcome, *, single: bool) -> Response:
        payload = outcome.payload
        entries = payload.outcome.get("entries", {})
        if (
            payload.status == InboundPayload.Status.QUARANTINED
            and payload.outcome.get("kind") != "batch-entries"
        ):
            return _problems_response(outcome)
        if single:
            answer_status, location = next(iter(entries.values()), ("201 Created", ""))
            resource_type, source_record_id = [*location.split("/"), "", ""][:2]
            stored = stored_resource_get(
                source=payload.source, resource_type=resource_type, source_record_id=source_record_id
            )
            response = Response(stored or {}, status=201 if answer_status.startswith("201") else 200)
            response["Location"] = location
            return response
        bundle_type = outcome.bundle_type or payload.outcome.get("bundle_type", "")
        if bundle_type not in {"transaction", "batch"}:
            stored = payload.outcome.get("stored", {})
            summary = ", ".join(f"{count} {name}" for name, count in stored.items()) or "nothing new"
            return Response(
                operation_outcome([("information", "informational", f"Stored {summary}.", "")]), status=200
            )
        return Response(
            bundle_response(bundle_type=bundle_type, entries=self._entry_answers(outcome)), status=200
        )

    def _entry_answers(self, outcome: ProcessOutcome) -> list[dict[str, Any]]:
        answers = outcome.payload.outcome.get("entries", {})
        problems = outcome.payload.outcome.get("entry_problems", {})
        count = outcome.payload.outcome.get("entry_count", len(answers))
        rendered = []
        for position in range(count):
            location = f"Bundle.entry[{position}]"
            if str(position) in problems:
                issues = [_issue(Problem(p["location"], p["message"])) for p in problems[str(position)]]
                rendered.append(
                    {"response": {"status": "400 Bad Request", "outcome": operation_outcome(issues)}}
                )
            elif location in answers:
                answer_status, reference = answers[location]
                rendered.append({"response": {"status": answer_status, "location": reference}})
        return rendered
