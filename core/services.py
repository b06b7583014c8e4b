"""Writes owned by core: role groups and demo staff accounts."""

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction

from core.errors import ApplicationError
from core.roles import ROLE_BY_NAME, ROLES


def _permission(qualified: str) -> Permission:
    app_label, codename = qualified.split(".", 1)
    try:
        return Permission.objects.get(content_type__app_label=app_label, codename=codename)
    except Permission.DoesNotExist as error:
        raise ApplicationError(f"Permission {qualified} does not exist; run migrate first.") from error


@transaction.atomic
def roles_sync() -> list[Group]:
    """Create each role's group and set its permissions to exactly the declared set. Idempotent."""
    groups = []
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role.name)
        group.permissions.set([_permission(name) for name in role.permissions])
        groups.append(group)
    return groups


@transaction.atomic
def staff_user_ensure(*, username: str, role_name: str, password: str, email: str = "") -> User:
    """Create (or bring back in line) a staff account holding exactly one role. Idempotent."""
    role = ROLE_BY_NAME.get(role_name)
    if role is None:
        raise ApplicationError(f"Unknown role {role_name!r}.")
    group = Group.objects.filter(name=role.name).first()
    if group is None:
        raise ApplicationError(f"Role group {role.name!r} is missing; sync roles first.")
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, email=email)
        user.set_password(password)
    user.is_active = True
    user.is_staff = role.is_staff
    user.full_clean()
    user.save()
    user.groups.set([group])
    return user
