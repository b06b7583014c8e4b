"""Object-level access through django-guardian, on the real database."""

import pytest
from django.contrib.auth.models import Group, Permission, User

from core.permissions import (
    ObjectAccessDenied,
    access_object,
    object_permission_grant,
    object_permission_revoke,
    objects_for_user,
)


@pytest.fixture
def groups(db: None) -> tuple[Group, Group]:
    return Group.objects.create(name="Ward A"), Group.objects.create(name="Ward B")


def test_object_grant_scopes_access(groups: tuple[Group, Group]) -> None:
    ward_a, ward_b = groups
    user = User.objects.create_user(username="nurse", password="long-enough-password-1")

    object_permission_grant(perm="change_group", grantee=user, obj=ward_a)

    assert access_object(user, "change_group", ward_a) == ward_a
    with pytest.raises(ObjectAccessDenied):
        access_object(user, "change_group", ward_b)
    visible = objects_for_user(user, "change_group", Group.objects.filter(name__startswith="Ward"))
    assert list(visible) == [ward_a]


def test_revoking_a_grant_removes_access(groups: tuple[Group, Group]) -> None:
    ward_a, _ = groups
    user = User.objects.create_user(username="nurse", password="long-enough-password-1")
    object_permission_grant(perm="auth.change_group", grantee=user, obj=ward_a)

    object_permission_revoke(perm="auth.change_group", grantee=user, obj=ward_a)

    assert objects_for_user(User.objects.get(pk=user.pk), "change_group", Group.objects.all()).count() == 0


def test_global_permission_sees_every_object(groups: tuple[Group, Group]) -> None:
    user = User.objects.create_user(username="steward", password="long-enough-password-1")
    user.user_permissions.add(Permission.objects.get(codename="change_group"))
    user = User.objects.get(pk=user.pk)

    visible = objects_for_user(user, "change_group", Group.objects.filter(name__startswith="Ward"))

    assert set(visible) == set(groups)


def test_group_grant_reaches_its_members(groups: tuple[Group, Group]) -> None:
    _, ward_b = groups
    team = Group.objects.create(name="Care team B")
    user = User.objects.create_user(username="member", password="long-enough-password-1")
    user.groups.add(team)

    object_permission_grant(perm="change_group", grantee=team, obj=ward_b)

    assert access_object(user, "change_group", ward_b) == ward_b


def test_inactive_and_anonymous_users_see_nothing(groups: tuple[Group, Group]) -> None:
    from django.contrib.auth.models import AnonymousUser

    ward_a, _ = groups
    user = User.objects.create_user(username="left", password="long-enough-password-1", is_active=False)
    object_permission_grant(perm="change_group", grantee=user, obj=ward_a)

    assert objects_for_user(user, "change_group", Group.objects.all()).count() == 0
    assert objects_for_user(AnonymousUser(), "change_group", Group.objects.all()).count() == 0
    with pytest.raises(ObjectAccessDenied):
        access_object(AnonymousUser(), "change_group", ward_a)
