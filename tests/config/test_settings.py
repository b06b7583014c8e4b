"""Every settings module imports in a fresh interpreter; production refuses to start without SECRET_KEY."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'debug': settings.DEBUG, 'secret': bool(settings.SECRET_KEY), "
    "'engine': settings.DATABASES['default']['ENGINE'], 'eager': settings.CELERY_TASK_ALWAYS_EAGER, "
    "'cookie_secure': settings.SESSION_COOKIE_SECURE, 'csrf_secure': settings.CSRF_COOKIE_SECURE, "
    "'hsts': settings.SECURE_HSTS_SECONDS, 'csp': sorted(settings.SECURE_CSP), "
    "'session_age': settings.SESSION_COOKIE_AGE}))"
)


def _run(module: str, tmp_path: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        {"DJANGO_SETTINGS_MODULE": module, "SECRET_KEY": "", "DATABASE_URL": f"sqlite:///{tmp_path}/db"}
    )
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("module", ["config.settings.local", "config.settings.test"])
def test_settings_module_imports(module: str, tmp_path: Path) -> None:
    result = _run(module, tmp_path)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["secret"] is True
    assert values["eager"] is True
    assert "script-src" in values["csp"]


def test_production_settings_import_with_secret_key(tmp_path: Path) -> None:
    result = _run(
        "config.settings.production",
        tmp_path,
        SECRET_KEY="a-production-secret-from-the-environment-0123456789",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/concord",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["debug"] is False
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["eager"] is False
    assert values["cookie_secure"] is True
    assert values["csrf_secure"] is True
    assert values["hsts"] >= 31_536_000
    assert {"default-src", "script-src", "frame-ancestors"} <= set(values["csp"])


def test_production_refuses_to_start_without_secret_key(tmp_path: Path) -> None:
    result = _run("config.settings.production", tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr


def test_idle_timeout_is_configurable(tmp_path: Path) -> None:
    result = _run("config.settings.local", tmp_path, SESSION_IDLE_TIMEOUT_MINUTES="5")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["session_age"] == 300


def test_postgresql_statements_are_prepared_after_five_runs_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from config.settings.base import database_configure

    def configured(url: str) -> dict[str, object]:
        return database_configure({"ENGINE": "django.db.backends.postgresql", "NAME": url})

    monkeypatch.delenv("DATABASE_PREPARE_THRESHOLD", raising=False)
    assert configured("concord")["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 5}
    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", "")
    assert configured("concord")["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": None}
    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", "2")
    assert configured("concord")["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 2}
    assert "OPTIONS" not in database_configure({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"})


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_statement_run_again_is_prepared_on_the_server() -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    for _ in range(6):
        User.objects.filter(username="prepared-probe").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]

    assert any(
        "prepared-probe" not in statement and 'FROM "auth_user" WHERE "auth_user"."username" = $' in statement
        for statement in prepared
    )
