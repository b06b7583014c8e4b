"""Writes made inside acting_as(actor) are attributed to that actor by django-auditlog."""

from auditlog.models import LogEntry
from django.contrib.auth.models import User

from core.context import acting_as, current_actor
from core.roles import ADMINISTRATOR, EXECUTIVE


def test_acting_as_attributes_audited_writes(role_users: dict[str, User]) -> None:
    admin = role_users[ADMINISTRATOR]
    target = role_users[EXECUTIVE]

    with acting_as(admin):
        assert current_actor() == admin
        target.email = "executive@example.org"
        target.save()

    entry = LogEntry.objects.get_for_object(target).filter(action=LogEntry.Action.UPDATE).latest("timestamp")
    assert entry.actor == admin
    assert "email" in entry.changes_dict
    assert current_actor() is None


def test_password_changes_never_reach_the_audit_log(role_users: dict[str, User]) -> None:
    target = role_users[EXECUTIVE]

    target.set_password("another-long-password-42")
    target.save()

    for entry in LogEntry.objects.get_for_object(target):
        assert "password" not in entry.changes_dict


def test_source_secrets_never_reach_the_audit_log(db: None) -> None:
    from patients.services import source_create

    source = source_create(
        actor=None,
        slug="pull-ehr",
        name="Pull EHR",
        connector_settings={"fhir_pull": {"auth": {"type": "bearer", "token": "secret-pull-token-123"}}},
    )
    source.connector_settings = {"fhir_pull": {"auth": {"type": "bearer", "token": "rotated-token-456"}}}
    source.save()

    entries = LogEntry.objects.get_for_object(source)
    assert entries.count() == 1  # the creation; the settings change is not audited
    for entry in entries:
        assert "connector_settings" not in entry.changes_dict
        assert "secret-pull-token" not in str(entry.changes)
