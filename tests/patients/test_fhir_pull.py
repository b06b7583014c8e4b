"""FHIR pull against a real FHIR server on loopback (tests/patients/fhir_test_server.py)."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from patients.models import InboundPayload, PullCheckpoint, Source, SourcePatient, SourceResource
from patients.pull.authorization import token_cache_clear
from patients.pull.client import retry_after_seconds
from patients.pull.errors import PullConfigurationError, PullRejected, PullTransientError
from patients.pull.services import source_pull
from patients.services import source_create
from patients.tasks import pull_all_sources
from tests.patients.fhir_test_server import (
    Failure,
    FhirTestServer,
    SmartClient,
    synthetic_observation,
    synthetic_patient,
)

TOKEN = "synthetic-bearer-token"
PATIENTS = 7
OBSERVATIONS = 5
PAGE_SIZE = 3

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[FhirTestServer]:
    token_cache_clear()
    fhir_server = FhirTestServer().start()
    fhir_server.accept_bearer(TOKEN)
    for number in range(1, PATIENTS + 1):
        fhir_server.put(synthetic_patient(number))
    for number in range(1, OBSERVATIONS + 1):
        fhir_server.put(synthetic_observation(number, patient_number=number))
    yield fhir_server
    fhir_server.stop()
    token_cache_clear()


def pull_settings(server: FhirTestServer, **overrides: Any) -> dict[str, Any]:
    return {
        "fhir_pull": {
            "base_url": server.base_url,
            "auth": {"type": "bearer", "token": TOKEN},
            "resource_types": ["Patient", "Observation"],
            "page_size": PAGE_SIZE,
            "timeout_seconds": 5,
            "max_retries": 3,
            "backoff_seconds": 0.01,
            **overrides,
        }
    }


def pulled_source(server: FhirTestServer, *, slug: str = "fhir-ehr", **overrides: Any) -> Source:
    return source_create(
        actor=None,
        slug=slug,
        name="FHIR EHR",
        kind=Source.Kind.EHR,
        connector_settings=pull_settings(server, **overrides),
    )


def searched(server: FhirTestServer, resource_type: str) -> list[dict[str, str]]:
    return [query.parameters for query in server.queries if query.resource_type == resource_type]


def test_full_pull_follows_every_page_and_stores_every_resource(server: FhirTestServer) -> None:
    source = pulled_source(server)

    summary = source_pull(actor=None, source=source)

    # 7 patients in pages of 3 (3 pages), 5 observations (2 pages).
    assert summary.pages == 5
    assert summary.payloads_stored == 5
    assert summary.duplicates == 0
    assert summary.errors == []
    assert dict(summary.resources_stored) == {"Patient": PATIENTS, "Observation": OBSERVATIONS}
    assert SourcePatient.objects.filter(source=source).count() == PATIENTS
    assert SourceResource.objects.filter(source=source, resource_type="Observation").count() == OBSERVATIONS
    observation = SourceResource.objects.get(source=source, source_record_id="pull-obs-2")
    assert observation.patient == SourcePatient.objects.get(source=source, source_record_id="pull-pat-2")
    payloads = InboundPayload.objects.filter(source=source)
    assert {payload.channel for payload in payloads} == {InboundPayload.Channel.PULL}
    assert {payload.status for payload in payloads} == {InboundPayload.Status.ACCEPTED}
    assert {payload.outcome["bundle_type"] for payload in payloads} == {"collection"}
    assert all(payload.origin.startswith(f"{server.base_url}/") for payload in payloads)
    first = searched(server, "Patient")[0]
    assert first == {"_count": "3", "_sort": "_lastUpdated"}  # no _lastUpdated on the first pull
    assert [query.get("_offset") for query in searched(server, "Patient")] == [None, "3", "6"]
    assert {query.authorization for query in server.queries} == {f"Bearer {TOKEN}"}
    checkpoints = {
        checkpoint.resource_type: (checkpoint.high_water_mark, checkpoint.next_url)
        for checkpoint in PullCheckpoint.objects.filter(source=source)
    }
    assert checkpoints == {
        "Patient": ("2025-03-01T08:00:07.000Z", ""),
        "Observation": ("2025-03-01T08:00:12.000Z", ""),
    }


def test_incremental_pull_asks_only_for_what_changed_after_the_mark(server: FhirTestServer) -> None:
    source = pulled_source(server)
    source_pull(actor=None, source=source)
    server.queries_clear()
    server.put(synthetic_patient(8))
    server.put(synthetic_observation(3, patient_number=3, value=88.0))

    summary = source_pull(actor=None, source=source)

    assert searched(server, "Patient") == [
        {"_lastUpdated": "gt2025-03-01T08:00:07.000Z", "_count": "3", "_sort": "_lastUpdated"}
    ]
    assert searched(server, "Observation") == [
        {"_lastUpdated": "gt2025-03-01T08:00:12.000Z", "_count": "3", "_sort": "_lastUpdated"}
    ]
    assert dict(summary.resources_stored) == {"Patient": 1, "Observation": 1}
    assert summary.pages == 2
    assert SourcePatient.objects.filter(source=source).count() == PATIENTS + 1
    assert SourceResource.objects.get(source=source, source_record_id="pull-obs-3").version == 2
    assert PullCheckpoint.objects.get(source=source, resource_type="Observation").high_water_mark == (
        "2025-03-01T08:00:14.000Z"
    )


def test_a_pull_with_nothing_new_stores_nothing(server: FhirTestServer) -> None:
    source = pulled_source(server)
    source_pull(actor=None, source=source)

    summary = source_pull(actor=None, source=source)

    assert summary.as_dict()["resources_stored_total"] == 0
    assert summary.pages == 2  # one empty page per type
    assert InboundPayload.objects.filter(source=source).count() == 5


def test_since_overrides_the_mark_and_overlap_is_recognized(server: FhirTestServer) -> None:
    source = pulled_source(server)
    source_pull(actor=None, source=source)
    server.queries_clear()

    summary = source_pull(actor=None, source=source, since=datetime(2025, 3, 1, tzinfo=UTC))

    assert searched(server, "Patient")[0]["_lastUpdated"] == "gt2025-03-01T00:00:00+00:00"
    assert summary.duplicates == 5
    assert summary.payloads_stored == 0
    assert InboundPayload.objects.filter(source=source).count() == 5
    assert PullCheckpoint.objects.get(source=source, resource_type="Patient").high_water_mark == (
        "2025-03-01T08:00:07.000Z"
    )


def test_429_503_and_dropped_connections_are_retried_then_the_pull_succeeds(server: FhirTestServer) -> None:
    source = pulled_source(server, max_retries=4)
    server.fail_next(2, Failure(status=429, retry_after="0"))
    server.fail_next(1, Failure(status=503))
    server.fail_next(1, Failure(close_connection=True))

    summary = source_pull(actor=None, source=source)

    assert summary.retries == 4
    assert dict(summary.resources_stored) == {"Patient": PATIENTS, "Observation": OBSERVATIONS}
    assert len(server.queries) == 5 + 4


def test_retry_after_is_honored(server: FhirTestServer) -> None:
    source = pulled_source(server, resource_types=["Observation"], backoff_seconds=0)
    server.fail_next(1, Failure(status=429, retry_after="1"))

    started = time.monotonic()
    source_pull(actor=None, source=source)

    assert time.monotonic() - started >= 1.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Sat, 01 Mar 2025 08:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("not a date") is None
    assert retry_after_seconds(None) is None


def test_transient_failures_beyond_the_retries_stop_the_pull_clearly(server: FhirTestServer) -> None:
    source = pulled_source(server, max_retries=2)
    server.fail_next(3, Failure(status=503))

    with pytest.raises(PullTransientError) as raised:
        source_pull(actor=None, source=source)

    assert raised.value.message == (
        "GET /fhir/Patient: HTTP 503 Service Unavailable after 3 attempts; the next pull resumes from here"
    )
    assert raised.value.status == 503
    assert len(server.queries) == 3


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        (
            {"auth": {"type": "bearer", "token": "wrong-token"}},
            401,
            "GET /fhir/Patient: the server answered HTTP 401 Unauthorized; not retried",
        ),
        (
            {"resource_types": ["Immunization", "Patient"]},
            404,
            "GET /fhir/Immunization: the server answered HTTP 404 Not Found; not retried",
        ),
    ],
)
def test_a_client_error_is_not_retried_and_stores_nothing(
    server: FhirTestServer, overrides: dict[str, Any], status: int, message: str
) -> None:
    source = pulled_source(server, **overrides)

    with pytest.raises(PullRejected) as raised:
        source_pull(actor=None, source=source)

    assert raised.value.status == status
    assert raised.value.message == message
    assert len(server.queries) == 1
    assert InboundPayload.objects.filter(source=source).count() == 0
    assert PullCheckpoint.objects.filter(source=source).count() == 0


def test_a_crashed_pull_resumes_at_the_page_it_stopped_at(server: FhirTestServer) -> None:
    source = pulled_source(server, max_retries=1)
    server.break_when(
        lambda query: query.resource_type == "Patient" and query.parameters.get("_offset") == "6"
    )

    with pytest.raises(PullTransientError) as raised:
        source_pull(actor=None, source=source)

    assert raised.value.summary is not None
    assert raised.value.summary.pages == 2
    checkpoint = PullCheckpoint.objects.get(source=source, resource_type="Patient")
    assert checkpoint.next_url == f"{server.base_url}/Patient?_count=3&_sort=_lastUpdated&_offset=6"
    assert checkpoint.high_water_mark == "2025-03-01T08:00:06.000Z"
    assert SourcePatient.objects.filter(source=source).count() == 6

    server.break_when(None)
    server.queries_clear()
    summary = source_pull(actor=None, source=source)

    assert [query.get("_offset") for query in searched(server, "Patient")] == ["6"]
    assert dict(summary.resources_stored) == {"Patient": 1, "Observation": OBSERVATIONS}
    assert SourcePatient.objects.filter(source=source).count() == PATIENTS
    assert set(SourcePatient.objects.filter(source=source).values_list("version", flat=True)) == {1}
    assert InboundPayload.objects.filter(source=source).count() == 5
    assert PullCheckpoint.objects.get(source=source, resource_type="Patient").next_url == ""


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_backend_services_authorization_end_to_end(server: FhirTestServer, algorithm: str) -> None:
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS384":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private_key = ec.generate_private_key(ec.SECP384R1())
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server.accept_smart_client(SmartClient(client_id="concord-test-client", public_key_pem=public_pem))
    auth = {
        "type": "smart-backend",
        "token_url": server.token_url,
        "client_id": "concord-test-client",
        "private_key_pem": private_pem,
        "key_id": "test-key-1",
        "algorithm": algorithm,
        "scope": "system/*.read",
    }
    source = pulled_source(server, auth=auth)

    summary = source_pull(actor=None, source=source)
    source_pull(actor=None, source=source)

    assert dict(summary.resources_stored) == {"Patient": PATIENTS, "Observation": OBSERVATIONS}
    assert len(server.token_requests) == 1  # cached across pages and pulls
    issued = server.token_requests[0]
    assert issued["header"]["kid"] == "test-key-1"
    assert issued["header"]["alg"] == algorithm
    assert issued["claims"]["aud"] == server.token_url
    assert issued["claims"]["sub"] == "concord-test-client"
    assert issued["claims"]["exp"] - issued["claims"]["iat"] == 300
    assert issued["scope"] == "system/*.read"
    assert len({query.authorization for query in server.queries}) == 1
    assert next(iter({query.authorization for query in server.queries})).startswith("Bearer smart-")


def test_a_smart_token_near_expiry_is_renewed(server: FhirTestServer) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # A one-second token is renewed after half a second: a second pull a second later asks again.
    server.accept_smart_client(
        SmartClient(client_id="short-lived", public_key_pem=public_pem, token_lifetime_seconds=1)
    )
    auth = {
        "type": "smart-backend",
        "token_url": server.token_url,
        "client_id": "short-lived",
        "private_key_pem": private_pem,
        "key_id": "k",
        "algorithm": "RS384",
    }
    source = pulled_source(server, auth=auth, resource_types=["Observation"])

    source_pull(actor=None, source=source)
    time.sleep(1.0)
    source_pull(actor=None, source=source)

    assert len(server.token_requests) == 2


def test_a_server_slower_than_the_timeout_is_retried_then_fails_clearly(server: FhirTestServer) -> None:
    source = pulled_source(server, timeout_seconds=0.5, max_retries=1)
    server.fail_next(2, Failure(hang_seconds=2.0, status=200))

    started = time.monotonic()
    with pytest.raises(PullTransientError) as raised:
        source_pull(actor=None, source=source)

    assert raised.value.message == (
        "GET /fhir/Patient: no answer within 0.5s after 2 attempts; the next pull resumes from here"
    )
    assert len(server.queries) == 2
    assert time.monotonic() - started < 1.9
    assert InboundPayload.objects.filter(source=source).count() == 0


def test_invalid_settings_are_named(server: FhirTestServer) -> None:
    source = pulled_source(server, base_url="ftp://example.org/fhir")

    with pytest.raises(PullConfigurationError) as raised:
        source_pull(actor=None, source=source)

    assert raised.value.message == "fhir_pull.base_url must be an http(s) URL"


def test_command_prints_a_json_summary(server: FhirTestServer) -> None:
    pulled_source(server)
    out = StringIO()

    call_command("fhir_pull", "--source", "fhir-ehr", "--json", stdout=out)

    summary = json.loads(out.getvalue())
    assert summary["pages"] == 5
    assert summary["resources_stored"] == {"Observation": OBSERVATIONS, "Patient": PATIENTS}
    assert summary["duplicates"] == 0
    assert summary["errors"] == []
    assert summary["failure"] == ""


def test_command_prints_text_and_fails_clearly(server: FhirTestServer) -> None:
    pulled_source(server, auth={"type": "bearer", "token": "wrong-token"})
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("fhir_pull", "--source", "fhir-ehr", "--since", "2025-01-01", stdout=out)

    assert str(raised.value) == (
        "the pull of fhir-ehr stopped: GET /fhir/Patient: the server answered HTTP 401 Unauthorized; not retried"
    )
    assert out.getvalue().startswith("Source fhir-ehr: 0 pages")
    assert server.queries[0].parameters["_lastUpdated"] == "gt2025-01-01T00:00:00+00:00"


def test_command_refuses_an_unknown_source(db: None) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("fhir_pull", "--source", "nowhere")

    assert str(raised.value) == "no source with slug 'nowhere'"


def test_task_pulls_every_active_source_with_pull_settings(server: FhirTestServer) -> None:
    pulled = pulled_source(server)
    inactive = pulled_source(server, slug="retired-ehr")
    Source.objects.filter(pk=inactive.pk).update(is_active=False)
    source_create(actor=None, slug="crm", name="CRM", kind=Source.Kind.CRM)

    queued = pull_all_sources.delay().get()

    assert queued == 1
    assert SourcePatient.objects.filter(source=pulled).count() == PATIENTS
    assert InboundPayload.objects.filter(source=inactive).count() == 0


def test_beat_pulls_every_fifteen_minutes_by_default() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["fhir-pull-all-sources"]

    assert entry == {"task": "patients.pull_all_sources", "schedule": timedelta(minutes=15)}


def test_a_revoked_smart_token_is_renewed_once_on_401(server: FhirTestServer) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server.accept_smart_client(SmartClient(client_id="revoked", public_key_pem=public_pem))
    auth = {
        "type": "smart-backend",
        "token_url": server.token_url,
        "client_id": "revoked",
        "private_key_pem": private_pem,
        "key_id": "k",
    }
    source = pulled_source(server, auth=auth, resource_types=["Patient"])
    source_pull(actor=None, source=source)
    server.state.bearer_tokens.clear()

    summary = source_pull(actor=None, source=source)

    assert len(server.token_requests) == 2
    assert summary.pages == 1


def test_a_page_the_pipeline_refuses_is_quarantined_and_the_pull_goes_on(server: FhirTestServer) -> None:
    invalid = {
        **synthetic_observation(99, patient_number=1),
        "valueQuantity": {"value": "not-a-number"},
        "meta": {"versionId": "1", "lastUpdated": "2025-03-01T09:00:00.000Z"},
    }
    server.state.resources["Observation"].append(invalid)  # past the server's own validation on purpose
    server.state.validate_answers = False
    source = pulled_source(server)

    summary = source_pull(actor=None, source=source)

    assert len(summary.errors) == 1
    assert summary.errors[0]["kind"] == "invalid"
    quarantined = InboundPayload.objects.get(source=source, status=InboundPayload.Status.QUARANTINED)
    assert summary.errors[0]["payload"] == str(quarantined.external_id)
    assert PullCheckpoint.objects.get(source=source, resource_type="Observation").high_water_mark == (
        "2025-03-01T09:00:00.000Z"
    )
