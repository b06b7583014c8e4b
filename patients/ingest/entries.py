"""What a parsed payload hands to storage, and how problems are reported."""

from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a payload: where (entry index and field path, CSV line and column) and what."""

    location: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class PayloadRejected(Exception):
    """The payload cannot be stored as it is; it is quarantined with these problems."""

    def __init__(self, problems: list[Problem], *, kind: str = "invalid") -> None:
        super().__init__(str(problems[0]) if problems else kind)
        self.problems = problems
        self.kind = kind


@dataclass
class Entry:
    """One resource to store, with where it came from in the payload."""

    resource_type: str
    source_id: str
    resource: JSON
    location: str
    index: int | None = None
    full_url: str = ""
    method: str = "POST"


@dataclass
class ParsedPayload:
    entries: list[Entry]
    bundle_type: str = ""  # "", or the Bundle.type the entries came from
    entry_count: int = 0  # entries in the payload, valid or not
    # Per-entry problems of a batch Bundle: entries are independent there, so the others are still stored.
    entry_problems: dict[int, list[Problem]] = field(default_factory=dict)
