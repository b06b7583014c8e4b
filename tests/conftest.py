"""Shared fixtures and the policy for tests that need real services.

Markers: ``postgres`` (the test database must be PostgreSQL), ``redis`` (a Redis server), ``browser``
(Debian's Chromium). Missing services skip those tests with the reason shown in the summary, unless
CONCORD_REQUIRE_SERVICES=1 (CI), when they fail instead.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from config.services import tcp_reachable
from core.roles import ADMINISTRATOR, CARE_COORDINATOR, DATA_STEWARD, EXECUTIVE

CHROMIUM = Path(os.environ.get("CONCORD_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_SERVICES = os.environ.get("CONCORD_REQUIRE_SERVICES") == "1"
TEST_PASSWORD = "correct-horse-battery-staple"

ROLE_USERNAMES = {
    CARE_COORDINATOR: "coordinator",
    DATA_STEWARD: "steward",
    EXECUTIVE: "executive",
    ADMINISTRATOR: "admin",
}


def _using_postgres() -> bool:
    return bool(settings.DATABASES["default"]["ENGINE"].endswith("postgresql"))


def _missing_service(item: pytest.Item) -> str | None:
    if item.get_closest_marker("postgres") and not _using_postgres():
        return "PostgreSQL is unreachable at CONCORD_TEST_DATABASE_URL (default 127.0.0.1:5432)"
    if item.get_closest_marker("redis") and not tcp_reachable(settings.REDIS_TEST_URL):
        return f"Redis is unreachable at {settings.REDIS_TEST_URL}"
    if item.get_closest_marker("browser") and not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_SERVICES and not _using_postgres():
        pytest.exit(
            "CONCORD_REQUIRE_SERVICES=1 but PostgreSQL is unreachable: refusing to fall back to SQLite.", 1
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = _missing_service(item)
    if reason is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing (CONCORD_REQUIRE_SERVICES=1): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def roles(db: None) -> None:
    from core.services import roles_sync

    roles_sync()


@pytest.fixture
def role_users(roles: None) -> dict[str, User]:
    """One active staff account per role, keyed by role name."""
    from core.services import staff_user_ensure

    return {
        role: staff_user_ensure(username=username, role_name=role, password=TEST_PASSWORD)
        for role, username in ROLE_USERNAMES.items()
    }


@pytest.fixture
def coordinator_client(role_users: dict[str, User]) -> Client:
    client = Client()
    client.force_login(role_users[CARE_COORDINATOR])
    return client
