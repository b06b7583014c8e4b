from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PullSummary:
    """What one pull of one source did. Counts, resource types, payload ids and timestamps only: no PHI."""

    source: str
    pages: int = 0
    payloads_stored: int = 0
    duplicates: int = 0
    retries: int = 0
    resources_stored: Counter[str] = field(default_factory=Counter)
    resources_unchanged: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    high_water_marks: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "pages": self.pages,
            "payloads_stored": self.payloads_stored,
            "duplicates": self.duplicates,
            "retries": self.retries,
            "resources_stored": dict(sorted(self.resources_stored.items())),
            "resources_stored_total": sum(self.resources_stored.values()),
            "resources_unchanged": dict(sorted(self.resources_unchanged.items())),
            "errors": self.errors,
            "high_water_marks": dict(sorted(self.high_water_marks.items())),
        }
