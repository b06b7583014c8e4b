"""Writes owned by core: role groups, demo staff accounts, API tokens."""

import logging
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.utils import timezone

from core.context import acting_as
from core.errors import ApplicationError
from core.models import ApiToken
from core.roles import ROLE_BY_NAME, ROLES

logger = logging.getLogger(__name__)

# Recording every use would write a row per request; a minute is precise enough to see a token is alive.
API_TOKEN_USE_RESOLUTION = timedelta(minutes=1)


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


@transaction.atomic
def api_token_issue(*, actor: User | None, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Issue a new API token for ``user``; the token itself is returned only here, never stored or logged."""
    if not user.is_active:
        raise ApplicationError(f"User {user.get_username()!r} is not active.")
    token = f"cat_{secrets.token_urlsafe(32)}"  # "cat": Concord API token, recognizable in a secret scan
    api_token = ApiToken(user=user, name=name, prefix=token[:8], token_sha256=ApiToken.digest(token))
    api_token.full_clean()
    with acting_as(actor):
        api_token.save()
    logger.info("API token %s… issued for user %s", api_token.prefix, user.pk)
    return api_token, token


@transaction.atomic
def api_token_revoke(*, actor: User | None, api_token: ApiToken) -> ApiToken:
    """Revoke a token: it stops working at once. Revoking a revoked token changes nothing."""
    if api_token.revoked_at is not None:
        return api_token
    api_token.revoked_at = timezone.now()
    with acting_as(actor):
        api_token.save(update_fields=["revoked_at", "updated_at"])
    logger.info("API token %s… revoked", api_token.prefix)
    return api_token


def api_token_use_record(*, api_token: ApiToken, now: datetime | None = None) -> None:
    """Remember when a token was last used, at most once a minute (an UPDATE, so not an audited change)."""
    now = now or timezone.now()
    if api_token.last_used_at is not None and now - api_token.last_used_at < API_TOKEN_USE_RESOLUTION:
        return
    ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    api_token.last_used_at = now
