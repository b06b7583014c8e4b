"""Conformance: every shared Synthea bundle ingests with zero quarantines; counts match; re-ingest stores nothing."""

import json
from collections import Counter
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Count

from patients.models import InboundPayload, SourcePatient, SourceResource
from tests.patients.conftest import SHARED_DATA

SYNTHEA = SHARED_DATA / "synthea-r4"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not SYNTHEA.is_dir(), reason=f"shared test data is absent ({SYNTHEA})"),
]


def _bundle_counts() -> tuple[Counter[str], Counter[str]]:
    """(entries per type, distinct type/id per type) over the shared bundles."""
    entries: Counter[str] = Counter()
    distinct: set[tuple[str, str]] = set()
    for path in sorted(SYNTHEA.glob("*.json")):
        for entry in json.loads(path.read_bytes())["entry"]:
            resource = entry["resource"]
            entries[resource["resourceType"]] += 1
            distinct.add((resource["resourceType"], resource["id"]))
    return entries, Counter(resource_type for resource_type, _ in distinct)


def _ingest() -> dict[str, Any]:
    out = StringIO()
    call_command("ingest", "--source", "synthea", "--json", str(SYNTHEA), stdout=out, stderr=StringIO())
    summary: dict[str, Any] = json.loads(out.getvalue())
    return summary


def test_all_synthea_bundles_ingest_with_exact_counts_and_reingest_stores_nothing() -> None:
    entries, distinct = _bundle_counts()
    files = len(list(SYNTHEA.glob("*.json")))

    summary = _ingest()

    assert summary["payloads"] == {
        "received": files,
        "accepted": files,
        "duplicate": 0,
        "quarantined": 0,
        "pending": 0,
    }
    assert summary["quarantined"] == []
    stored = Counter(dict(SourceResource.objects.values_list("resource_type").annotate(n=Count("id"))))
    stored["Patient"] = SourcePatient.objects.count()
    assert stored == distinct
    # Every entry was accepted: stored first time, or (Organizations and Practitioners repeated across
    # bundles) recognized as already stored or stored as a newer version.
    outcomes: Counter[str] = Counter()
    for outcome in InboundPayload.objects.values_list("outcome", flat=True):
        for key in ("created", "updated", "unchanged"):
            outcomes.update(outcome[key])
    assert outcomes == entries
    assert SourceResource.objects.filter(patient__isnull=True).exclude(patient_source_id="").count() == 0

    again = _ingest()

    assert again["payloads"]["duplicate"] == files
    assert again["resources_stored"] == {}
    assert SourceResource.objects.count() + SourcePatient.objects.count() == sum(distinct.values())
