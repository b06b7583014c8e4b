"""Idle sessions expire after the configured number of minutes; activity renews the deadline."""

from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone


def test_session_lasts_the_idle_timeout_and_dies_with_the_browser(coordinator_client: Client) -> None:
    before = timezone.now()
    response = coordinator_client.get("/patients/")

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


def test_an_idle_session_is_sent_back_to_login(coordinator_client: Client) -> None:
    session_key = coordinator_client.session.session_key
    Session.objects.filter(session_key=session_key).update(expire_date=timezone.now() - timedelta(seconds=1))

    response = coordinator_client.get("/patients/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
