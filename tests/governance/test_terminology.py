"""Terminology maps in the database: shipped defaults, the unmapped queue, a steward's map re-normalizing."""

import hashlib
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.errors import ApplicationError
from governance.models import RenormalizationRun, TerminologyMap, UnmappedCode
from governance.policies.terminology import (
    UnmappedConcept,
    default_map_entries,
    terminology_maps_current,
    terminology_maps_forget,
)
from governance.services import (
    terminology_defaults_load,
    terminology_map_create,
    unmapped_code_map,
    unmapped_codes_ignore,
    unmapped_codes_record,
)
from patients.ingest.entries import Entry
from patients.ingest.extract import resource_code
from patients.ingest.store import canonical_json
from patients.models import InboundPayload, Source, SourceResource
from patients.services import source_create
from patients.terminology import entries_terminology_normalize

LOINC = "http://loinc.org"
LOCAL = "http://clinic.example/codes"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_maps() -> Any:
    terminology_maps_forget()
    yield
    terminology_maps_forget()


@pytest.fixture
def clinic(db: None) -> Source:
    return source_create(actor=None, slug="clinic", name="Clinic EHR", kind=Source.Kind.EHR)


@pytest.fixture
def hospital(db: None) -> Source:
    return source_create(actor=None, slug="hospital", name="Hospital EHR", kind=Source.Kind.EHR)


def _observation(code: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": code,
        "subject": {"reference": "Patient/p-1"},
        **fields,
    }


def _stored(source: Source, resource: dict[str, Any]) -> SourceResource:
    payload = InboundPayload.objects.create(
        source=source,
        received_at="2024-01-01T00:00:00Z",
        last_received_at="2024-01-01T00:00:00Z",
        channel=InboundPayload.Channel.FILE,
        format=InboundPayload.Format.FHIR,
        body=b"{}",
        size=2,
        sha256=f"{resource['id']:0>64}"[:64],
        status=InboundPayload.Status.ACCEPTED,
    )
    system, code = resource_code(resource)
    return SourceResource.objects.create(
        source=source,
        resource_type=resource["resourceType"],
        source_record_id=resource["id"],
        content_sha256="0" * 64,
        resource=resource,
        payload=payload,
        code_system=system,
        code=code,
    )


def test_the_migration_ships_the_defaults_and_loading_again_changes_nothing() -> None:
    assert TerminologyMap.objects.filter(origin=TerminologyMap.Origin.SHIPPED).count() == len(
        default_map_entries()
    )
    assert terminology_defaults_load() == (0, 0)
    maps = terminology_maps_current()
    assert ("", "LN") in maps.by_system
    assert maps.by_alias[("", "hba1c")].standard_code == "4548-4"


def test_unmapped_codes_are_counted_per_source_with_first_and_last_seen(
    clinic: Source, hospital: Source
) -> None:
    mystery = UnmappedConcept(system=LOCAL, code="X1", display="Mystery")
    text = UnmappedConcept(system="", code="", display="Feeling poorly", alias="feeling poorly")

    unmapped_codes_record(
        source_id=clinic.pk, seen=Counter({("Observation", mystery): 2, ("Condition", text): 1})
    )
    first = UnmappedCode.objects.get(source=clinic, code="X1")
    unmapped_codes_record(source_id=clinic.pk, seen=Counter({("Observation", mystery): 3}))
    unmapped_codes_record(source_id=hospital.pk, seen=Counter({("Observation", mystery): 1}))

    again = UnmappedCode.objects.get(source=clinic, code="X1")
    assert again.count == 5
    assert again.first_seen_at == first.first_seen_at
    assert again.last_seen_at >= first.last_seen_at
    assert UnmappedCode.objects.get(source=hospital, code="X1").count == 1
    assert UnmappedCode.objects.get(source=clinic, alias="feeling poorly").display == "Feeling poorly"
    assert UnmappedCode.objects.count() == 3


def test_ingested_entries_are_normalized_and_their_unmapped_codes_queued_on_commit(
    clinic: Source, django_capture_on_commit_callbacks: Any
) -> None:
    entries = [
        Entry("Observation", "o1", _observation({"text": "BP"}, valueString="BP 142/91"), "entry[0]"),
        Entry("Observation", "o2", _observation({"coding": [{"system": LOCAL, "code": "X1"}]}), "entry[1]"),
        Entry("Observation", "o3", _observation({"coding": [{"system": LOCAL, "code": "X1"}]}), "entry[2]"),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        entries_terminology_normalize(entries, source=clinic)

    assert [coding["code"] for coding in entries[0].resource["code"]["coding"]] == ["85354-9"]
    queued = UnmappedCode.objects.get()
    assert (queued.source, queued.system, queued.code, queued.count) == (clinic, LOCAL, "X1", 2)


@pytest.mark.postgres
def test_a_stewards_map_marks_the_queue_and_renormalizes_stored_resources(
    clinic: Source, hospital: Source, django_capture_on_commit_callbacks: Any
) -> None:
    steward = User.objects.create_user(username="steward")
    local = {"coding": [{"system": LOCAL, "code": "GLU", "display": "Glucose"}]}
    at_clinic = _stored(clinic, _observation(local, valueQuantity={"value": 7.0, "unit": "mmol/L"}))
    at_hospital = _stored(hospital, {**_observation(local), "id": "obs-2"})
    unrelated = _stored(
        clinic, {**_observation({"coding": [{"system": LOCAL, "code": "NA"}]}), "id": "obs-3"}
    )
    unmapped_codes_record(
        source_id=clinic.pk,
        seen=Counter({("Observation", UnmappedConcept(system=LOCAL, code="GLU", display="Glucose")): 1}),
    )
    queued = UnmappedCode.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        terminology_map = unmapped_code_map(
            actor=steward,
            unmapped=queued,
            standard_system=LOINC,
            standard_code="2345-7",
            standard_display="Glucose [Mass/volume] in Serum or Plasma",
        )

    queued.refresh_from_db()
    assert (queued.status, queued.terminology_map) == (UnmappedCode.Status.MAPPED, terminology_map)
    run = RenormalizationRun.objects.get()
    assert (run.status, run.candidates, run.examined, run.updated) == (
        RenormalizationRun.Status.DONE,
        1,
        1,
        1,
    )
    at_clinic.refresh_from_db()
    assert [coding["code"] for coding in at_clinic.resource["code"]["coding"]] == ["GLU", "2345-7"]
    assert at_clinic.resource["valueQuantity"]["value"] == 126
    assert (at_clinic.code_system, at_clinic.code) == (LOCAL, "GLU")
    assert at_clinic.content_sha256 == hashlib.sha256(canonical_json(at_clinic.resource).encode()).hexdigest()
    at_hospital.refresh_from_db()
    unrelated.refresh_from_db()
    assert [coding["code"] for coding in at_hospital.resource["code"]["coding"]] == ["GLU"]
    assert unrelated.content_sha256 == "0" * 64


@pytest.mark.postgres
def test_an_alias_map_gives_a_text_only_resource_its_indexed_code(
    clinic: Source, django_capture_on_commit_callbacks: Any
) -> None:
    stored = _stored(
        clinic, _observation({"text": "Sugar level"}, valueQuantity={"value": 95, "unit": "mg/dL"})
    )
    assert (stored.code_system, stored.code) == ("", "")

    with django_capture_on_commit_callbacks(execute=True):
        terminology_map_create(
            actor=None,
            source=None,
            local_system="",
            alias="Sugar Level",
            standard_system=LOINC,
            standard_code="2345-7",
        )

    stored.refresh_from_db()
    assert (stored.code_system, stored.code) == (LOINC, "2345-7")
    assert stored.resource["code"]["text"] == "Sugar level"


def test_a_map_needs_a_code_or_an_alias(clinic: Source) -> None:
    with pytest.raises(ApplicationError):
        terminology_map_create(
            actor=None, source=clinic, local_system=LOCAL, standard_system=LOINC, standard_code="1-8"
        )


def test_ignoring_closes_only_open_entries(clinic: Source) -> None:
    unmapped_codes_record(
        source_id=clinic.pk,
        seen=Counter({("Condition", UnmappedConcept(system=LOCAL, code="Z", display="")): 1}),
    )
    entry = UnmappedCode.objects.get()
    assert unmapped_codes_ignore(actor=None, unmapped_ids=[entry.pk]) == 1
    assert unmapped_codes_ignore(actor=None, unmapped_ids=[entry.pk]) == 0
    with pytest.raises(ApplicationError):
        unmapped_code_map(
            actor=None, unmapped=UnmappedCode.objects.get(), standard_system=LOINC, standard_code="1-8"
        )


def test_the_admin_lists_the_queue_and_maps_an_entry(
    admin_client: Client, clinic: Source, django_capture_on_commit_callbacks: Any
) -> None:
    unmapped_codes_record(
        source_id=clinic.pk,
        seen=Counter({("Observation", UnmappedConcept(system=LOCAL, code="K", display="Potassium")): 4}),
    )
    entry = UnmappedCode.objects.get()

    listing = admin_client.get("/admin/governance/unmappedcode/")
    assert listing.status_code == 200
    assert b"Potassium" in listing.content
    assert admin_client.get("/admin/governance/terminologymap/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/governance/unmappedcode/{entry.pk}/change/",
            {"standard_system": LOINC, "standard_code": "2823-3", "standard_display": "Potassium"},
        )

    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.status == UnmappedCode.Status.MAPPED
    assert entry.terminology_map is not None
    assert (entry.terminology_map.source, entry.terminology_map.standard_code) == (clinic, "2823-3")
