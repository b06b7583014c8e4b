"""Why a FHIR pull stopped. Messages name the request and the HTTP status, never data from the server."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patients.pull.summary import PullSummary


class PullError(Exception):
    """A pull stopped; ``message`` is safe to show and log (no PHI). ``summary`` is what it did before."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.summary: PullSummary | None = None


class PullConfigurationError(PullError):
    """The source's ``fhir_pull`` settings are missing or invalid."""


class PullRejected(PullError):
    """The server refused a request in a way that retrying cannot fix (a 4xx other than 429, a non-Bundle)."""


class PullTransientError(PullError):
    """The server stayed unavailable (429, 5xx, connection errors, timeouts) through every retry."""
