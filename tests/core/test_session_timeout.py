"""Idle sessions expire after the configured number of minutes; activity renews the deadline."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import StaffSession as Session
from core.roles import CARE_COORDINATOR
from tests.conftest import TEST_PASSWORD


def test_session_lasts_the_idle_timeout_and_dies_with_the_browser(role_users: dict[str, User]) -> None:
    before = timezone.now()
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": role_users[CARE_COORDINATOR].username, "password": TEST_PASSWORD}
    )

    assert response.status_code == 302
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_IDLE_TIMEOUT_MINUTES * 60 == 900
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == ""  # a browser-session cookie: closing the browser ends it
    assert cookie["httponly"] is True
    expire_date = Session.objects.get(session_key=cookie.value).expire_date
    assert before + timedelta(seconds=895) <= expire_date <= timezone.now() + timedelta(seconds=900)


def test_activity_pushes_the_deadline_forward(coordinator_client: Client) -> None:
    session_key = coordinator_client.session.session_key
    Session.objects.filter(session_key=session_key).update(expire_date=timezone.now() + timedelta(minutes=1))

    coordinator_client.get("/patients/")

    expire_date = Session.objects.get(session_key=session_key).expire_date
    assert expire_date > timezone.now() + timedelta(minutes=14)


def test_the_deadline_is_written_at_most_once_a_minute(coordinator_client: Client) -> None:
    session_key = coordinator_client.session.session_key
    renewed = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE - 30)
    Session.objects.filter(session_key=session_key).update(expire_date=renewed)

    with CaptureQueriesContext(connection) as recent:
        coordinator_client.get("/patients/")
    assert Session.objects.get(session_key=session_key).expire_date == renewed
    assert not [query for query in recent.captured_queries if query["sql"].startswith("UPDATE")]

    a_minute_old = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE - 61)
    Session.objects.filter(session_key=session_key).update(expire_date=a_minute_old)
    coordinator_client.get("/patients/")
    assert Session.objects.get(session_key=session_key).expire_date > timezone.now() + timedelta(seconds=895)


def test_an_idle_session_is_sent_back_to_login(coordinator_client: Client) -> None:
    session_key = coordinator_client.session.session_key
    Session.objects.filter(session_key=session_key).update(expire_date=timezone.now() - timedelta(seconds=1))

    response = coordinator_client.get("/patients/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_logging_out_ends_the_session_at_once(coordinator_client: Client) -> None:
    session_key = coordinator_client.session.session_key

    coordinator_client.post("/accounts/logout/")

    assert not Session.objects.filter(session_key=session_key).exists()
    assert coordinator_client.get("/patients/").status_code == 302


def test_a_signed_in_page_reads_the_session_and_the_user_with_permissions_only(
    coordinator_client: Client,
) -> None:
    coordinator_client.get("/patients/")

    with CaptureQueriesContext(connection) as queries:
        response = coordinator_client.get("/patients/")

    assert response.status_code == 200
    # PostgreSQL: the session with its user and their permissions; SQLite: the session, the user, then
    # the permissions.
    expected = 1 if connection.vendor == "postgresql" else 3
    assert len(queries.captured_queries) == expected, [
        query["sql"][:80] for query in queries.captured_queries
    ]
    assert "core_staff_session" in queries.captured_queries[0]["sql"]
    assert response.wsgi_request.user.username == "coordinator"


def test_the_session_row_names_its_user(coordinator_client: Client, role_users: dict[str, User]) -> None:
    session = Session.objects.get(session_key=coordinator_client.session.session_key)

    assert session.user_id == role_users[CARE_COORDINATOR].pk


def test_a_password_change_elsewhere_signs_the_session_out(
    coordinator_client: Client, role_users: dict[str, User]
) -> None:
    """Django's session hash check runs on the user read with the session."""
    assert coordinator_client.get("/patients/").status_code == 200
    user = User.objects.get(pk=role_users[CARE_COORDINATOR].pk)
    user.set_password("another-long-password-2026")
    user.save()

    response = coordinator_client.get("/patients/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_deactivated_or_deleted_user_is_signed_out(
    coordinator_client: Client, role_users: dict[str, User]
) -> None:
    coordinator = role_users[CARE_COORDINATOR]
    User.objects.filter(pk=coordinator.pk).update(is_active=False)

    assert coordinator_client.get("/patients/").status_code == 302

    User.objects.filter(pk=coordinator.pk).update(is_active=True)
    client = Client()
    client.force_login(coordinator)
    assert client.get("/patients/").status_code == 200
    Session.objects.filter(session_key=client.session.session_key).update(user_id=987654321)
    response = client.get("/patients/")  # the row names someone else: Django reads the session's user

    assert response.status_code == 200
    assert response.wsgi_request.user.pk == coordinator.pk


def test_a_permission_taken_away_applies_at_the_next_request(
    coordinator_client: Client, role_users: dict[str, User]
) -> None:
    assert coordinator_client.get("/patients/").status_code == 200
    role_users[CARE_COORDINATOR].groups.clear()

    assert coordinator_client.get("/patients/").status_code == 403
