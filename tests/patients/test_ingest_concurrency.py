"""Two workers storing the same new record at once: one waits, fails on the unique key, retries, and succeeds."""

import threading
import time

import pytest
from django.db import connection, transaction

from patients.ingest.entries import Entry
from patients.ingest.processing import payload_process, payload_receive
from patients.ingest.store import entries_store
from patients.models import InboundPayload, Source, SourceResource
from patients.services import source_create
from tests.patients.conftest import as_bytes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ORGANIZATION = {"resourceType": "Organization", "id": "org-1", "name": "General Hospital"}


def test_concurrent_insert_of_the_same_record_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    source = source_create(actor=None, slug="ehr", name="EHR", kind=Source.Kind.EHR)
    first, _ = payload_receive(source=source, body=b"first", format="fhir", channel="file", enqueue=False)
    second, _ = payload_receive(
        source=source, body=as_bytes(ORGANIZATION), format="fhir", channel="file", enqueue=False
    )
    inserted, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                entry = Entry("Organization", "org-1", dict(ORGANIZATION), location="")
                entries_store(source=source, payload=first, entries=[entry])
                inserted.set()
                release.wait(timeout=10)
                time.sleep(0.3)  # the main thread is now blocked on the uncommitted key
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert inserted.wait(timeout=10)
    release.set()
    with caplog.at_level("INFO", logger="patients.ingest.processing"):
        outcome = payload_process(payload_id=second.pk)
    thread.join(timeout=10)

    assert outcome.payload.status == InboundPayload.Status.ACCEPTED
    assert outcome.payload.outcome["unchanged"] == {"Organization": 1}
    assert "concurrent write of the same records, attempt 1" in caplog.text
    assert SourceResource.objects.filter(resource_type="Organization").count() == 1


def test_identifiers_are_written_after_linking_so_a_worker_waits_on_them_only_for_a_commit() -> None:
    """Payloads from one source carry the same identifiers (a hospital's, a practitioner's): whoever writes
    one second waits for the first writer's commit, so nothing else may come between those writes and it."""
    from django.test.utils import CaptureQueriesContext

    source = source_create(actor=None, slug="ehr", name="EHR", kind=Source.Kind.EHR)
    patient = {"resourceType": "Patient", "id": "p-1", "name": [{"family": "Lopez", "given": ["Ana"]}]}
    admission = {
        "resourceType": "Encounter",
        "id": "e-1",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p-1"},
        "period": {"start": "2026-11-30T08:00:00Z"},
    }
    organization = {**ORGANIZATION, "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.4", "value": "1"}]}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient}, {"resource": admission}, {"resource": organization}],
    }
    payload, _ = payload_receive(
        source=source, body=as_bytes(bundle), format="fhir", channel="file", enqueue=False
    )
    with CaptureQueriesContext(connection) as queries:
        outcome = payload_process(payload_id=payload.pk)
    assert outcome.payload.status == InboundPayload.Status.ACCEPTED

    writes = [
        query["sql"] for query in queries.captured_queries if query["sql"].startswith(("INSERT", "UPDATE"))
    ]
    identifier_writes = [
        index for index, sql in enumerate(writes) if '"patients_sourceidentifier"' in sql.split("(")[0]
    ]
    link_writes = [index for index, sql in enumerate(writes) if '"patients_patientlink"' in sql.split("(")[0]]
    outbox_writes = [index for index, sql in enumerate(writes) if '"core_outboxevent"' in sql.split("(")[0]]
    assert identifier_writes
    assert link_writes
    assert outbox_writes
    assert min(identifier_writes) > max(link_writes + outbox_writes)
