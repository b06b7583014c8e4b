"""Errors raised by services. Views and APIs turn them into messages or 4xx answers, never 500."""


class ApplicationError(Exception):
    """A business rule refused the operation; ``message`` is safe to show to staff."""

    def __init__(self, message: str, *, extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
