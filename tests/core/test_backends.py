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


def _django_user(user_id: object) -> User | None:
    found = DjangoModelBackend().get_user(user_id)
    return found if found is None or isinstance(found, User) else None


def _permissions(user: User) -> set[str]:
    return DjangoModelBackend().get_all_permissions(_fresh(user))


@pytest.mark.postgres
def test_the_signed_in_user_comes_with_their_permissions_in_one_query_as_django_reads_them() -> None:
    user = User.objects.create_user("perm-one", password="x" * 16, first_name="Pat", email="p@example.org")
    group = Group.objects.create(name="perm-one-group")
    group.permissions.add(Permission.objects.get(codename="view_patient"))
    user.groups.add(group)
    user.user_permissions.add(Permission.objects.get(codename="view_source"))
    admin = User.objects.create_superuser("perm-one-admin", password="x" * 16)
    bare = User.objects.create_user("perm-one-bare", password="x" * 16)

    for someone in (user, admin, bare):
        with CaptureQueriesContext(connection) as queries:
            found = ModelBackend().get_user(someone.pk)
            assert found is not None
            permissions = ModelBackend().get_all_permissions(found)
            assert found.has_perm("patients.view_patient") == ("patients.view_patient" in permissions)

        assert len(queries.captured_queries) == 1
        expected = _django_user(someone.pk)
        assert expected is not None
        assert {field.attname: getattr(found, field.attname) for field in User._meta.concrete_fields} == {
            field.attname: getattr(expected, field.attname) for field in User._meta.concrete_fields
        }
        assert permissions == _permissions(someone)
        assert found._state.adding is False
    assert (
        len(ModelBackend().get_all_permissions(ModelBackend().get_user(admin.pk)))
        == Permission.objects.count()
    )
    assert ModelBackend().get_all_permissions(ModelBackend().get_user(bare.pk)) == set()


@pytest.mark.postgres
@pytest.mark.parametrize("user_id", [987654321, "not-a-number", None])
def test_no_user_for_an_unknown_or_malformed_id(user_id: object) -> None:
    assert ModelBackend().get_user(user_id) is None


@pytest.mark.postgres
def test_an_inactive_user_is_not_signed_in() -> None:
    inactive = User.objects.create_user("perm-one-inactive", password="x" * 16, is_active=False)

    assert ModelBackend().get_user(inactive.pk) is None
    assert _django_user(inactive.pk) is None
