"""The ``fhir_pull`` block of a source's connector settings, read and checked once per pull."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from patients.pull.errors import PullConfigurationError

DEFAULT_RESOURCE_TYPES = (
    "Patient",
    "Encounter",
    "Observation",
    "Condition",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "Procedure",
)
SMART_ALGORITHMS = ("RS384", "ES384")
SMART_REQUIRED = ("token_url", "client_id", "private_key_pem", "key_id")


@dataclass(frozen=True)
class PullSettings:
    base_url: str
    auth: dict[str, Any]
    resource_types: tuple[str, ...] = DEFAULT_RESOURCE_TYPES
    page_size: int = 100
    timeout_seconds: float = 30.0
    max_retries: int = 5
    # First backoff delay; each retry doubles it. Small values keep tests fast.
    backoff_seconds: float = 1.0


def _http_url(value: Any, *, name: str) -> str:
    if (
        not isinstance(value, str)
        or urlsplit(value).scheme not in ("http", "https")
        or not urlsplit(value).netloc
    ):
        raise PullConfigurationError(f"fhir_pull.{name} must be an http(s) URL")
    return value.rstrip("/")


def _auth(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise PullConfigurationError("fhir_pull.auth must be an object with a type: bearer or smart-backend")
    if raw.get("type") == "bearer":
        if not isinstance(raw.get("token"), str) or not raw["token"]:
            raise PullConfigurationError("fhir_pull.auth.token is required for bearer authentication")
        return dict(raw)
    if raw.get("type") == "smart-backend":
        missing = [key for key in SMART_REQUIRED if not isinstance(raw.get(key), str) or not raw[key]]
        if missing:
            raise PullConfigurationError(f"fhir_pull.auth is missing {', '.join(missing)} for smart-backend")
        algorithm = raw.get("algorithm", "RS384")
        if algorithm not in SMART_ALGORITHMS:
            raise PullConfigurationError(
                f"fhir_pull.auth.algorithm must be one of {', '.join(SMART_ALGORITHMS)}"
            )
        _http_url(raw["token_url"], name="auth.token_url")
        return {"scope": "system/*.read", **raw, "algorithm": algorithm}
    raise PullConfigurationError("fhir_pull.auth.type must be bearer or smart-backend")


def _positive(raw: dict[str, Any], key: str, default: float, *, kind: type) -> Any:
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or (kind is int and value != int(value))
    ):
        raise PullConfigurationError(f"fhir_pull.{key} must be a non-negative number")
    return kind(value)


def pull_settings_read(connector_settings: dict[str, Any]) -> PullSettings:
    """The pull settings of a source; raises PullConfigurationError naming the first wrong key."""
    raw = connector_settings.get("fhir_pull")
    if not isinstance(raw, dict):
        raise PullConfigurationError("the source has no fhir_pull settings")
    resource_types = raw.get("resource_types", DEFAULT_RESOURCE_TYPES)
    if not isinstance(resource_types, list | tuple) or not all(
        isinstance(item, str) and item for item in resource_types
    ):
        raise PullConfigurationError("fhir_pull.resource_types must be a list of resource type names")
    page_size = _positive(raw, "page_size", 100, kind=int)
    if page_size < 1:
        raise PullConfigurationError("fhir_pull.page_size must be at least 1")
    timeout_seconds = _positive(raw, "timeout_seconds", 30.0, kind=float)
    if timeout_seconds <= 0:
        raise PullConfigurationError("fhir_pull.timeout_seconds must be more than 0")
    return PullSettings(
        base_url=_http_url(raw.get("base_url"), name="base_url"),
        auth=_auth(raw.get("auth")),
        resource_types=tuple(resource_types),
        page_size=page_size,
        timeout_seconds=timeout_seconds,
        max_retries=_positive(raw, "max_retries", 5, kind=int),
        backoff_seconds=_positive(raw, "backoff_seconds", 1.0, kind=float),
    )
