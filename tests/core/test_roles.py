"""Role groups and demo logins are created idempotently with exactly their declared permissions."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from core.errors import ApplicationError
from core.roles import ROLES
from core.services import roles_sync, staff_user_ensure


def test_roles_sync_sets_exact_permissions_and_is_idempotent(db: None) -> None:
    roles_sync()
    roles_sync()

    assert Group.objects.filter(name__in=[role.name for role in ROLES]).count() == len(ROLES)
    for role in ROLES:
        perms = {
            f"{app}.{codename}"
            for app, codename in Group.objects.get(name=role.name).permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        assert perms == set(role.permissions), role.name


def test_roles_sync_removes_permissions_added_by_hand(db: None) -> None:
    roles_sync()
    executive = Group.objects.get(name="Executive")
    executive.permissions.add(*Group.objects.get(name="Administrator").permissions.all())

    roles_sync()

    assert set(executive.permissions.values_list("codename", flat=True)) == {"access_analytics"}


def test_setup_demo_command_twice_keeps_one_user_per_role(db: None) -> None:
    call_command("setup_demo")
    call_command("setup_demo")

    assert User.objects.count() == 4
    admin = User.objects.get(username="admin")
    assert admin.is_staff is True
    assert admin.is_superuser is False
    assert list(admin.groups.values_list("name", flat=True)) == ["Administrator"]
    assert User.objects.get(username="coordinator").check_password(settings.CONCORD_DEMO_PASSWORD)


def test_unknown_role_is_refused(db: None) -> None:
    roles_sync()

    with pytest.raises(ApplicationError, match="Unknown role"):
        staff_user_ensure(username="x", role_name="Surgeon", password="long-enough-password-1")
