"""A small FHIR server on loopback for pull tests, built on a real FHIR library (fhir.resources, R4B).

It serves synthetic resources it validates with the R4B models, answers type searches with
``_lastUpdated=gt...``, ``_count``, ``_sort=_lastUpdated`` and ``_offset`` as ``searchset`` Bundles whose
``next`` links are absolute URLs on its own port, checks bearer tokens, and has a SMART Backend Services
token endpoint that verifies the client assertion with the client's public key. Tests can make it fail
(status, hang, closed connection) and read back every query it received.
"""

import contextlib
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jwt
from fhir.resources.R4B import get_fhir_model_class

TOKEN_PATH = "/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@dataclass
class Failure:
    """How to answer a request instead of serving it: a status, a hang, or a closed connection."""

    status: int = 500
    retry_after: str | None = None
    hang_seconds: float = 0.0
    close_connection: bool = False


@dataclass
class Query:
    resource_type: str
    parameters: dict[str, str]
    authorization: str


@dataclass
class SmartClient:
    client_id: str
    public_key_pem: bytes
    token_lifetime_seconds: int = 300


@dataclass
class _State:
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bearer_tokens: set[str] = field(default_factory=set)
    smart_client: SmartClient | None = None
    queries: list[Query] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    # A lasting failure for matching queries (a server broken from some page on), until cleared.
    broken_when: Callable[[Query], bool] | None = None
    broken_with: Failure = field(default_factory=Failure)
    # Off only to serve an invalid resource on purpose (a source with bad data).
    validate_answers: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


def lenient_instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def fhir_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def resource_validate(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def synthetic_patient(number: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"pull-pat-{number}",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.1001.7", "value": f"PULL-{number:04d}"}],
        "name": [{"family": f"Testperson{number}", "given": ["Synthetic"]}],
        "gender": "female" if number % 2 else "male",
        "birthDate": f"19{50 + number % 40}-0{1 + number % 9}-1{number % 10}",
    }


def synthetic_observation(number: int, *, patient_number: int, value: float = 72.0) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"pull-obs-{number}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/pull-pat-{patient_number}"},
        "effectiveDateTime": "2025-02-10T09:30:00Z",
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


class FhirTestServer:
    def __init__(self) -> None:
        self.state = _State()
        self.clock = START
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.fhir = self  # type: ignore[attr-defined]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fhir-test-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/fhir"

    @property
    def token_url(self) -> str:
        return self.base_url.removesuffix("/fhir") + TOKEN_PATH

    def start(self) -> "FhirTestServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes handlers that are hanging on purpose
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # Data -------------------------------------------------------------------------------------------

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a resource; every write gets a later meta.lastUpdated (one second apart)."""
        self.clock += timedelta(seconds=1)
        stored = {**resource, "meta": {"versionId": "1", "lastUpdated": fhir_instant(self.clock)}}
        with self.state.lock:
            of_type = self.state.resources.setdefault(resource["resourceType"], [])
            for position, existing in enumerate(of_type):
                if existing["id"] == resource["id"]:
                    version = int(existing["meta"]["versionId"]) + 1
                    stored["meta"]["versionId"] = str(version)
                    of_type[position] = stored
                    break
            else:
                of_type.append(stored)
        resource_validate(stored)
        return stored

    # Behaviour --------------------------------------------------------------------------------------

    def accept_bearer(self, token: str) -> None:
        self.state.bearer_tokens.add(token)

    def accept_smart_client(self, client: SmartClient) -> None:
        self.state.smart_client = client

    def fail_next(self, count: int, failure: Failure) -> None:
        with self.state.lock:
            self.state.failures.extend([failure] * count)

    def break_when(self, matches: Callable[[Query], bool] | None, failure: Failure | None = None) -> None:
        with self.state.lock:
            self.state.broken_when = matches
            self.state.broken_with = failure or Failure(status=500)

    @property
    def queries(self) -> list[Query]:
        with self.state.lock:
            return list(self.state.queries)

    def queries_clear(self) -> None:
        with self.state.lock:
            self.state.queries.clear()

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        return list(self.state.token_requests)

    # Answers ----------------------------------------------------------------------------------------

    def searchset(self, resource_type: str, parameters: dict[str, str]) -> dict[str, Any]:
        with self.state.lock:
            found = list(self.state.resources.get(resource_type, []))
        if "_lastUpdated" in parameters:
            bound = parameters["_lastUpdated"]
            if not bound.startswith("gt"):
                raise ValueError("only _lastUpdated=gt... is supported")
            after = lenient_instant(bound.removeprefix("gt"))
            found = [item for item in found if lenient_instant(item["meta"]["lastUpdated"]) > after]
        if parameters.get("_sort") == "_lastUpdated":
            found.sort(key=lambda item: lenient_instant(item["meta"]["lastUpdated"]))
        count = int(parameters.get("_count", "50"))
        offset = int(parameters.get("_offset", "0"))
        page = found[offset : offset + count]
        own = {key: value for key, value in parameters.items() if key != "_offset"}
        links = [{"relation": "self", "url": self._search_url(resource_type, own, offset)}]
        if offset + count < len(found):
            links.append({"relation": "next", "url": self._search_url(resource_type, own, offset + count)})
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{self.base_url}/{resource_type}/{item['id']}",
                    "resource": item,
                    "search": {"mode": "match"},
                }
                for item in page
            ],
        }
        if self.state.validate_answers:
            resource_validate(bundle)
        return bundle

    def _search_url(self, resource_type: str, parameters: dict[str, str], offset: int) -> str:
        query = urlencode({**parameters, "_offset": str(offset)}, safe=":", quote_via=quote)
        return f"{self.base_url}/{resource_type}?{query}"

    def token_issue(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = self.state.smart_client
        if client is None:
            return 400, {"error": "unsupported_grant_type"}
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type") != ASSERTION_TYPE
        ):
            return 400, {"error": "invalid_request"}
        try:
            claims = jwt.decode(
                form.get("client_assertion", ""),
                client.public_key_pem,
                algorithms=["RS384", "ES384"],
                audience=self.token_url,
                issuer=client.client_id,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.PyJWTError as error:
            return 401, {"error": "invalid_client", "error_description": type(error).__name__}
        if claims["sub"] != client.client_id:
            return 401, {"error": "invalid_client"}
        header = jwt.get_unverified_header(form["client_assertion"])
        token = f"smart-{secrets.token_urlsafe(16)}"
        self.state.bearer_tokens.add(token)
        self.state.token_requests.append({"claims": claims, "header": header, "scope": form.get("scope", "")})
        return 200, {
            "access_token": token,
            "expires_in": client.token_lifetime_seconds,
            "token_type": "bearer",
            "scope": form.get("scope", ""),
        }


class _Handler(BaseHTTPRequestHandler):
    server_version = "ConcordFhirTestServer/1"
    protocol_version = "HTTP/1.1"

    @property
    def fhir(self) -> FhirTestServer:
        return self.server.fhir  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet test output

    def _send_json(
        self, status: int, document: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _outcome(self, status: int, text: str, *, headers: dict[str, str] | None = None) -> None:
        self._send_json(
            status,
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
            },
            headers=headers,
        )

    def _fail(self, failure: Failure) -> None:
        if failure.hang_seconds:
            self.fhir.stopping.wait(failure.hang_seconds)
        if failure.close_connection:
            self.close_connection = True
            return
        headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else None
        # The client may have given up waiting already (timeout tests).
        with contextlib.suppress(OSError):
            self._outcome(failure.status, "failing on purpose", headers=headers)

    def do_GET(self) -> None:
        state = self.fhir.state
        url = urlsplit(self.path)
        parameters = {key: values[-1] for key, values in parse_qs(url.query).items()}
        resource_type = url.path.removeprefix("/fhir/").strip("/")
        query = Query(resource_type, parameters, self.headers.get("Authorization", ""))
        with state.lock:
            state.queries.append(query)
            failure = state.failures.popleft() if state.failures else None
            if failure is None and state.broken_when is not None and state.broken_when(query):
                failure = state.broken_with
        if failure is not None:
            self._fail(failure)
            return
        if query.authorization.removeprefix("Bearer ") not in state.bearer_tokens:
            self._outcome(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
            return
        if not url.path.startswith("/fhir/") or "/" in resource_type:
            self._outcome(404, "unknown path")
            return
        with state.lock:
            served = resource_type in state.resources
        if not served:
            self._outcome(404, f"resource type {resource_type} is not supported")
            return
        self._send_json(200, self.fhir.searchset(resource_type, parameters))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {key: values[-1] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
        if urlsplit(self.path).path != TOKEN_PATH:
            self._outcome(404, "unknown path")
            return
        status, answer = self.fhir.token_issue(form)
        self._send_json(status, answer)
