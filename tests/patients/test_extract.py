"""The time a stored resource is dated by (``patients.ingest.extract``): the timeline's order and FHIR ``date``."""

from datetime import UTC
from typing import Any

import pytest

from patients.ingest.extract import resource_effective_at


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        # When it happened comes before when it was written down.
        (
            {"resourceType": "Observation", "effectivePeriod": {"start": "2024-03-02T09:30:00Z"},
             "issued": "2024-03-05T10:00:00Z"},
            "2024-03-02T09:30:00+00:00",
        ),
        (
            {"resourceType": "Condition", "onsetPeriod": {"start": "2010-06-01"}, "recordedDate": "2020-01-15"},
            "2010-06-01T00:00:00+00:00",
        ),
        (
            {"resourceType": "Condition", "onsetString": "childhood", "recordedDate": "2020-01-15"},
            "2020-01-15T00:00:00+00:00",
        ),
        (
            {"resourceType": "Immunization", "occurrenceString": "spring 2019", "recorded": "2019-05-02"},
            "2019-05-02T00:00:00+00:00",
        ),
        (
            {"resourceType": "Procedure", "performedPeriod": {"end": "2021-02-03T08:00:00-05:00"}},
            "2021-02-03T13:00:00+00:00",
        ),
        ({"resourceType": "Encounter", "period": {"start": "2023-07-04T12:00:00+02:00"}}, "2023-07-04T10:00:00+00:00"),
        ({"resourceType": "Claim", "created": "2022-01-01", "billablePeriod": {"start": "2021-12-01"}},
         "2022-01-01T00:00:00+00:00"),
        ({"resourceType": "Observation", "effectivePeriod": "not a period"}, None),
    ],
)  # fmt: skip
def test_a_resource_is_dated_by_when_it_happened(resource: dict[str, Any], expected: str | None) -> None:
    found = resource_effective_at(resource)

    assert (found.astimezone(UTC).isoformat() if found else None) == expected
