"""Fixtures for ingestion tests: sources, FHIR builders, and a way to land payloads through the real pipeline."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from patients.ingest.processing import payload_receive
from patients.models import InboundPayload, Source
from patients.services import source_create, source_token_issue

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VITAL_SIGNS_CATEGORY = [
    {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
        ]
    }
]


@pytest.fixture
def source(db: None) -> Source:
    return source_create(
        actor=None, slug="hospital-ehr", name="Hospital EHR", kind=Source.Kind.EHR, jurisdiction="ma"
    )


@pytest.fixture
def source_token(source: Source) -> str:
    return source_token_issue(actor=None, source=source)


@pytest.fixture
def land(
    django_capture_on_commit_callbacks: Any,
) -> Callable[..., InboundPayload]:
    """Land bytes like a connector does; the processing task runs (eagerly) once the landing commits."""

    def _land(source: Source, body: bytes, *, format: str = "fhir", **options: Any) -> InboundPayload:
        with django_capture_on_commit_callbacks(execute=True):
            payload, _ = payload_receive(
                source=source, body=body, format=format, channel=InboundPayload.Channel.FILE, options=options
            )
        payload.refresh_from_db()
        return payload

    return _land


def patient(resource_id: str = "pat-1", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.1001.1", "value": f"MRN-{resource_id}"}],
        "name": [{"use": "official", "family": "Quigley", "given": ["Alma"]}],
        "gender": "female",
        "birthDate": "1961-04-12",
        "telecom": [{"system": "phone", "value": "(617) 555-0134", "use": "home"}],
        "address": [
            {"line": ["12 Elm street"], "city": "Boston", "state": "Massachusetts", "postalCode": "02108"}
        ],
        **extra,
    }


def blood_pressure(
    resource_id: str, subject: str, *, when: str = "2024-03-02T09:30:00-05:00"
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "category": VITAL_SIGNS_CATEGORY,
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]
        },
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {
                    "value": 128,
                    "unit": "mm[Hg]",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {
                    "value": 82,
                    "unit": "mm[Hg]",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
        ],
    }


def transaction(*resources: dict[str, Any], bundle_type: str = "transaction") -> dict[str, Any]:
    """A Bundle whose entries have urn:uuid full URLs, as Synthea writes them."""
    return {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for resource in resources
        ],
    }


def as_bytes(document: Any) -> bytes:
    return json.dumps(document).encode()
