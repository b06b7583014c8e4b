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
