"""Each role sees its own navigation, lands on its home, and is refused the other areas."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.roles import ADMINISTRATOR, CARE_COORDINATOR, DATA_STEWARD, EXECUTIVE

AREA_PATHS = {
    "patients": "/patients/",
    "governance": "/governance/",
    "engagement": "/engagement/",
    "analytics": "/analytics/",
    "admin": "/admin/",
}
EXPECTED = {
    CARE_COORDINATOR: ({"patients", "engagement"}, "/patients/"),
    DATA_STEWARD: ({"patients", "governance", "admin"}, "/governance/"),
    EXECUTIVE: ({"analytics"}, "/analytics/"),
    ADMINISTRATOR: ({"patients", "governance", "engagement", "analytics", "admin"}, "/admin/"),
}


def _nav_keys(html: str) -> set[str]:
    return set(re.findall(r'data-nav="(\w+)"', html))


@pytest.mark.parametrize("role", list(EXPECTED))
def test_role_navigation_and_home(role_users: dict[str, User], role: str) -> None:
    expected_areas, home = EXPECTED[role]
    client = Client()
    client.force_login(role_users[role])

    landing = client.get("/")
    assert landing.status_code == 302
    assert landing["Location"] == home

    page_path = next(AREA_PATHS[key] for key in sorted(expected_areas) if key != "admin")
    page = client.get(page_path)
    assert page.status_code == 200
    assert _nav_keys(page.content.decode()) == expected_areas
    for key, path in AREA_PATHS.items():
        response = client.get(path)
        if key in expected_areas:
            assert response.status_code == 200, f"{role} should open {path}"
        elif key == "admin":
            assert response.status_code == 302, f"{role} must not enter the admin"
            assert response["Location"].startswith("/admin/login/")
        else:
            assert response.status_code == 403, f"{role} must not open {path}"


def test_user_without_role_sees_no_areas(db: None) -> None:
    user = User.objects.create_user(username="norole", password="irrelevant-password-123")
    client = Client()
    client.force_login(user)

    response = client.get("/")

    assert response.status_code == 403
    assert b"No role assigned yet" in response.content
    assert _nav_keys(response.content.decode()) == set()


def test_login_page_shows_the_form_and_no_navigation(client: Client, db: None) -> None:
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">' in html
    assert '<label for="id_password">' in html
    assert _nav_keys(html) == set()


def test_login_with_demo_credentials_lands_on_role_home(role_users: dict[str, User]) -> None:
    from tests.conftest import TEST_PASSWORD

    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "executive", "password": TEST_PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == "/analytics/"
    assert b"Signed in as" in response.content


def test_wrong_password_is_refused_with_a_clear_message(role_users: dict[str, User]) -> None:
    client = Client()

    response = client.post("/accounts/login/", {"username": "executive", "password": "wrong-password"})

    assert response.status_code == 200
    assert b"did not match" in response.content
    assert "_auth_user_id" not in client.session


def test_logout_ends_the_session(coordinator_client: Client) -> None:
    response = coordinator_client.post("/accounts/logout/")

    assert response.status_code == 302
    assert coordinator_client.get("/patients/").status_code == 302
