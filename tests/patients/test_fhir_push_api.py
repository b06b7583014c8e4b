"""POST /fhir/ and /fhir/<Type>: source-token authentication and answers as FHIR servers give them."""

import json
from typing import Any

import pytest
from django.test import Client, override_settings

from patients.models import InboundPayload, Source, SourcePatient, SourceResource
from tests.patients.conftest import as_bytes, blood_pressure, patient, transaction

FHIR_JSON = "application/fhir+json"


def post(client: Client, path: str, body: bytes, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(path, data=body, content_type=FHIR_JSON, headers=headers)


def test_transaction_answers_transaction_response_with_entry_status(
    client: Client, source: Source, source_token: str
) -> None:
    body = as_bytes(transaction(patient("p-1"), blood_pressure("o-1", "urn:uuid:p-1")))

    response = post(client, "/fhir/", body, source_token)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert response.json() == {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": "201 Created", "location": "Patient/p-1/_history/1"}},
            {"response": {"status": "201 Created", "location": "Observation/o-1/_history/1"}},
        ],
    }
    payload = InboundPayload.objects.get()
    assert payload.channel == InboundPayload.Channel.API
    assert bytes(payload.body) == body


def test_batch_answers_per_entry_including_errors(client: Client, source: Source, source_token: str) -> None:
    bundle = transaction(
        patient("p-1"), {"resourceType": "Patient", "id": "p-2", "gender": 5}, bundle_type="batch"
    )

    response = post(client, "/fhir/", as_bytes(bundle), source_token)

    assert response.status_code == 200
    entries = response.json()["entry"]
    assert entries[0] == {"response": {"status": "201 Created", "location": "Patient/p-1/_history/1"}}
    assert entries[1]["response"]["status"] == "400 Bad Request"
    assert entries[1]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].gender"]
    assert SourcePatient.objects.get().source_record_id == "p-1"


def test_single_resource_create_answers_201_with_location_and_body(
    client: Client, source: Source, source_token: str
) -> None:
    response = post(client, "/fhir/Patient", as_bytes(patient("p-7")), source_token)

    assert response.status_code == 201
    assert response["Location"] == "Patient/p-7/_history/1"
    assert response.json()["id"] == "p-7"
    assert response.json()["telecom"][0]["value"] == "+16175550134"


def test_a_resend_answers_the_same_and_stores_nothing_new(
    client: Client, source: Source, source_token: str
) -> None:
    body = as_bytes(transaction(patient("p-1")))
    first = post(client, "/fhir/", body, source_token)

    second = post(client, "/fhir/", body, source_token)

    assert second.status_code == 200
    assert second.json() == first.json()
    assert InboundPayload.objects.get().times_received == 2
    assert SourcePatient.objects.count() == 1


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/fhir/", b'{"resourceType": "Bundle", "type": "transaction", "entry": [', "malformed JSON"),
        ("/fhir/", b"[1, 2, 3]", "this JSON is not FHIR"),
        ("/fhir/", b"", "the payload is empty"),
        (
            "/fhir/Patient",
            as_bytes(blood_pressure("o-1", "Patient/p-1")),
            "the body is a Observation but was posted to Patient",
        ),
        ("/fhir/Spaceship", b'{"resourceType": "Spaceship"}', "unknown FHIR R4 resource type 'Spaceship'"),
        (
            "/fhir/Patient",
            as_bytes(patient("p-1", birthDate="2001-02-30")),
            "day value is outside expected range",
        ),
    ],
)
def test_bad_input_answers_400_operation_outcome_and_keeps_the_payload(
    client: Client, source: Source, source_token: str, path: str, body: bytes, expected: str
) -> None:
    response = post(client, path, body, source_token)

    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert expected in json.dumps(outcome)
    payload = InboundPayload.objects.get()
    assert bytes(payload.body) == body
    assert payload.status == InboundPayload.Status.QUARANTINED
    assert SourcePatient.objects.count() == SourceResource.objects.count() == 0


def test_oversized_payload_answers_413_and_is_kept(client: Client, source: Source, source_token: str) -> None:
    body = as_bytes(transaction(patient("p-1"), patient("p-2")))

    with override_settings(CONCORD_MAX_PAYLOAD_BYTES=len(body) - 1):
        response = post(client, "/fhir/", body, source_token)

    assert response.status_code == 413
    assert f"over the limit of {len(body) - 1:,}" in response.json()["issue"][0]["diagnostics"]
    assert bytes(InboundPayload.objects.get().body) == body


def test_a_body_beyond_twice_the_limit_is_refused_unread(
    client: Client, source: Source, source_token: str
) -> None:
    body = as_bytes(transaction(patient("p-1"), patient("p-2")))

    with override_settings(CONCORD_MAX_PAYLOAD_BYTES=len(body) // 3):
        response = post(client, "/fhir/", body, source_token)

    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"
    assert InboundPayload.objects.count() == 0


@pytest.mark.parametrize(
    ("token", "expected"),
    [(None, "Authentication credentials were not provided."), ("cst_wrong", "The API token is not valid")],
)
def test_missing_or_wrong_token_answers_401_and_stores_nothing(
    client: Client, source: Source, source_token: str, token: str | None, expected: str
) -> None:
    response = post(client, "/fhir/", as_bytes(transaction(patient("p-1"))), token)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="concord-fhir"'
    assert expected in response.json()["issue"][0]["diagnostics"]
    assert InboundPayload.objects.count() == 0


def test_inactive_source_token_is_refused(client: Client, source: Source, source_token: str) -> None:
    Source.objects.filter(pk=source.pk).update(is_active=False)

    response = post(client, "/fhir/", as_bytes(patient("p-1")), source_token)

    assert response.status_code == 401


def test_a_staff_session_cannot_push(client: Client, role_users: dict[str, Any], source: Source) -> None:
    client.force_login(role_users["Administrator"])

    response = client.post("/fhir/", data=as_bytes(patient("p-1")), content_type=FHIR_JSON)

    assert response.status_code == 401
    assert InboundPayload.objects.count() == 0


def test_get_on_the_push_endpoint_is_not_allowed(client: Client, source: Source, source_token: str) -> None:
    response = client.get("/fhir/", HTTP_AUTHORIZATION=f"Bearer {source_token}")

    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


def test_collection_bundle_answers_an_informational_outcome(
    client: Client, source: Source, source_token: str
) -> None:
    response = post(
        client, "/fhir/", as_bytes(transaction(patient("p-1"), bundle_type="collection")), source_token
    )

    assert response.status_code == 200
    assert response.json()["issue"][0] == {
        "severity": "information",
        "code": "informational",
        "diagnostics": "Stored 1 Patient.",
    }


def test_every_answer_parses_as_fhir(client: Client, source: Source, source_token: str) -> None:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    ok = post(client, "/fhir/", as_bytes(transaction(patient("p-1"))), source_token)
    bad = post(client, "/fhir/", b"{", source_token)

    Bundle.model_validate(ok.json())
    OperationOutcome.model_validate(bad.json())
