"""The one-query permission backend answers as Django's own does."""

import pytest
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.backends import ModelBackend

pytestmark = pytest.mark.django_db


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # no permission cache


def test_own_and_group_permissions_in_one_query_the_same_as_django() -> None:
    user = User.objects.create_user("perm-check", password="x" * 16)
    group = Group.objects.create(name="perm-check-group")
    group.permissions.add(Permission.objects.get(codename="view_patient"))
    user.groups.add(group)
    user.user_permissions.add(Permission.objects.get(codename="view_source"))

    with CaptureQueriesContext(connection) as queries:
        found = ModelBackend().get_all_permissions(_fresh(user))

    assert found == DjangoModelBackend().get_all_permissions(_fresh(user))
    assert {"patients.view_patient", "patients.view_source"} <= found
    assert len(queries.captured_queries) == 2  # the user, then their permissions
    group.permissions.clear()
    assert "patients.view_patient" not in ModelBackend().get_all_permissions(_fresh(user))


def test_inactive_users_and_superusers() -> None:
    inactive = User.objects.create_user("perm-inactive", password="x" * 16, is_active=False)
    inactive.user_permissions.add(Permission.objects.get(codename="view_source"))
    admin = User.objects.create_superuser("perm-admin", password="x" * 16)

    assert ModelBackend().get_all_permissions(_fresh(inactive)) == set()
    assert len(ModelBackend().get_all_permissions(_fresh(admin))) == Permission.objects.count()
