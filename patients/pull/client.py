"""HTTP to a FHIR server with the standard library: timeouts, retries with backoff, same-origin paging.

Every request has a timeout. 429, 500, 502, 503, 504, connection errors and timeouts are retried with
exponential backoff and jitter (a ``Retry-After`` from the server wins); other 4xx are not retried.
Authorization is only ever sent to the configured server's origin: a redirect or a ``next`` link to
another origin stops the pull instead of leaking the token.
"""

import email.utils
import http.client
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urljoin, urlsplit

from patients.pull.configuration import PullSettings
from patients.pull.errors import PullRejected, PullTransientError

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 60.0
# A server asking for a longer pause than this is treated as down for now; the next scheduled pull resumes.
MAX_RETRY_AFTER_SECONDS = 300.0
USER_AGENT = "Concord-FHIR-pull/1"

_jitter = secrets.SystemRandom()


def origin_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _describe(method: str, url: str) -> str:
    # The path names the resource type; the query is left out to keep log lines short and predictable.
    return f"{method} {urlsplit(url).path or '/'}"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(tz=UTC))).total_seconds())


class Authorization(Protocol):
    """Gives the Authorization header of each request; a renewable one can fetch a new token on a 401."""

    renewable: bool

    def headers(self) -> dict[str, str]: ...

    def forget(self) -> None: ...


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if origin_of(newurl) != origin_of(req.full_url):
            return None  # urllib then raises the 3xx as an HTTPError: not retried, the pull stops clearly
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Message
    body: bytes


class HttpTransport:
    """Sends one request with a timeout, retrying transient failures."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        max_retries: int,
        backoff_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.retries = 0
        self.opener = urllib.request.build_opener(_SameOriginRedirects())

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        # Exponential backoff with jitter, so many workers retrying together do not hit the server in step.
        delay = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * 2**attempt)
        return delay / 2 + _jitter.uniform(0, delay / 2)

    def send(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None = None
    ) -> HttpResponse:
        described = _describe(method, url)
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            request = urllib.request.Request(  # noqa: S310 -- the configuration admits http(s) URLs only
                url, data=body, method=method, headers={"User-Agent": USER_AGENT, **headers}
            )
            try:
                with self.opener.open(request, timeout=self.timeout_seconds) as response:
                    return HttpResponse(
                        status=response.status, headers=response.headers, body=response.read()
                    )
            except urllib.error.HTTPError as error:
                with error:
                    status = error.code
                    if status not in RETRYABLE_STATUSES:
                        raise PullRejected(
                            f"{described}: the server answered {_status_text(status)}; not retried",
                            status=status,
                        ) from None
                    retry_after = retry_after_seconds(error.headers.get("Retry-After"))
                    problem = _status_text(status)
                    last_status: int | None = status
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as error:
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                if isinstance(reason, TimeoutError):
                    problem = f"no answer within {self.timeout_seconds:g}s"
                else:
                    # The class names the failure (ConnectionRefusedError, RemoteDisconnected) without data.
                    problem = type(reason).__name__
                last_status = None
            if attempt == self.max_retries:
                raise PullTransientError(
                    f"{described}: {problem} after {attempt + 1} attempts; the next pull resumes from here",
                    status=last_status,
                )
            delay = self._delay(attempt, retry_after)
            self.retries += 1
            logger.info("%s: %s, retry %s in %.2fs", described, problem, attempt + 1, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")


class FhirSearchClient:
    """Searches one FHIR server: the first page of a type's search, then each ``next`` page."""

    def __init__(
        self, *, settings: PullSettings, transport: HttpTransport, authorization: Authorization
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.authorization = authorization
        self.origin = origin_of(settings.base_url)

    def search_url(self, resource_type: str, *, since: str = "") -> str:
        parameters = {"_count": str(self.settings.page_size), "_sort": "_lastUpdated"}
        if since:
            parameters = {"_lastUpdated": f"gt{since}", **parameters}
        query = urlencode(parameters, safe=":", quote_via=quote)
        return f"{self.settings.base_url}/{quote(resource_type)}?{query}"

    def page_get(self, url: str) -> dict[str, Any]:
        """One searchset Bundle. Raises PullRejected when it is not one, or for a URL off the server."""
        if origin_of(url) != self.origin:
            raise PullRejected(
                f"GET {urlsplit(url).path}: the link points away from {self.settings.base_url}; refused"
            )
        headers = {"Accept": "application/fhir+json"}
        try:
            response = self.transport.send("GET", url, headers={**headers, **self.authorization.headers()})
        except PullRejected as error:
            if error.status != HTTPStatus.UNAUTHORIZED or not self.authorization.renewable:
                raise
            # An access token can be revoked before its announced expiry: get a new one, once.
            self.authorization.forget()
            response = self.transport.send("GET", url, headers={**headers, **self.authorization.headers()})
        try:
            document = json.loads(response.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PullRejected(f"{_describe('GET', url)}: the answer is not JSON") from None
        if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
            raise PullRejected(f"{_describe('GET', url)}: the answer is not a FHIR Bundle")
        return document

    def next_url(self, bundle: dict[str, Any], *, current_url: str) -> str:
        for link in bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                return urljoin(current_url, link["url"])
        return ""
