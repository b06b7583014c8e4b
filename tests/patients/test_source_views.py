"""The source systems page and payload pages: who may see them and what they show."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.roles import ADMINISTRATOR, CARE_COORDINATOR, DATA_STEWARD, EXECUTIVE
from patients.models import InboundPayload, Source
from tests.patients.conftest import as_bytes, patient


@pytest.fixture
def landed(source: Source, land: Callable[..., InboundPayload]) -> tuple[InboundPayload, InboundPayload]:
    good = land(source, as_bytes(patient("p-1")))
    bad = land(source, b'{"resourceType": "Patient", "gender": 1}')
    return good, bad


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_steward_sees_sources_with_counts_and_last_error(
    role_users: dict[str, User], landed: tuple[InboundPayload, InboundPayload]
) -> None:
    response = client_for(role_users[DATA_STEWARD]).get("/patients/sources/")

    assert response.status_code == 200
    (status,) = response.context["statuses"]
    assert (status.payloads, status.accepted, status.quarantined, status.patients, status.resources) == (
        2,
        1,
        1,
        1,
        0,
    )
    assert status.last_error == "gender: Input should be a valid string"
    assert status.last_received_at == landed[1].last_received_at
    html = response.content.decode()
    assert "Hospital EHR" in html
    assert "gender: Input should be a valid string" in html


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(CARE_COORDINATOR, False), (EXECUTIVE, False), (DATA_STEWARD, True), (ADMINISTRATOR, True)],
)
def test_source_pages_authorization(
    role_users: dict[str, User], landed: tuple[InboundPayload, InboundPayload], role: str, allowed: bool
) -> None:
    client = client_for(role_users[role])
    _, bad = landed
    paths = [
        "/patients/sources/",
        "/patients/sources/hospital-ehr/payloads/",
        f"/patients/payloads/{bad.external_id}/",
    ]

    for path in paths:
        assert client.get(path).status_code == (200 if allowed else 403), path


def test_payload_list_filters_by_status_and_never_shows_bodies(
    role_users: dict[str, User], landed: tuple[InboundPayload, InboundPayload]
) -> None:
    response = client_for(role_users[DATA_STEWARD]).get(
        "/patients/sources/hospital-ehr/payloads/?status=quarantined"
    )

    assert [payload.pk for payload in response.context["page"].object_list] == [landed[1].pk]
    assert "Quigley" not in response.content.decode()


def test_payload_detail_lists_problems_and_offers_replay(
    role_users: dict[str, User], landed: tuple[InboundPayload, InboundPayload]
) -> None:
    _, bad = landed

    html = client_for(role_users[DATA_STEWARD]).get(f"/patients/payloads/{bad.external_id}/").content.decode()

    assert "<code>gender</code>" in html
    assert "Input should be a valid string" in html
    assert "Replay this payload" in html


def test_unknown_payload_is_404(role_users: dict[str, User], db: None) -> None:
    response = client_for(role_users[DATA_STEWARD]).get(
        "/patients/payloads/00000000-0000-0000-0000-000000000000/"
    )

    assert response.status_code == 404


def test_empty_source_list_says_how_to_start(role_users: dict[str, User]) -> None:
    response = client_for(role_users[DATA_STEWARD]).get("/patients/sources/")

    assert b"No source systems yet" in response.content
