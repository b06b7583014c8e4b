"""The REST API authenticates for itself: JSON 401/403 for anonymous clients, never a login page."""

from django.contrib.auth.models import User
from django.test import Client

from core.roles import CARE_COORDINATOR


def test_me_api_answers_for_a_signed_in_user(coordinator_client: Client) -> None:
    response = coordinator_client.get("/api/v1/me/")

    assert response.status_code == 200
    assert response.json() == {
        "username": "coordinator",
        "roles": [CARE_COORDINATOR],
        "areas": ["patients", "engagement"],
    }


def test_me_api_refuses_anonymous_with_json(client: Client, role_users: dict[str, User]) -> None:
    response = client.get("/api/v1/me/")

    assert response.status_code == 403
    assert response.json() == {"detail": "Authentication credentials were not provided."}
