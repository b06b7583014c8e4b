"""Reads owned by core: what a staff user may navigate to, and whose API token is whose."""

from django.contrib.auth.models import AnonymousUser, User

from core.models import ApiToken
from core.roles import AREAS, ROLE_BY_NAME, Area


def area_list(*, user: User | AnonymousUser) -> list[Area]:
    """The navigation areas ``user`` may open, in menu order."""
    if not user.is_authenticated:
        return []
    return [
        area
        for area in AREAS
        if (area.permission is None and getattr(user, "is_staff", False))
        or (area.permission is not None and user.has_perm(area.permission))
    ]


def home_area_get(*, user: User | AnonymousUser) -> Area | None:
    """The area a user lands on after login: their role's home, else the first area they may open."""
    areas = area_list(user=user)
    if not areas:
        return None
    by_key = {area.key: area for area in areas}
    group_names: list[str] = list(user.groups.values_list("name", flat=True)) if user.is_authenticated else []
    for name in group_names:
        role = ROLE_BY_NAME.get(name)
        if role is not None and role.home_area in by_key:
            return by_key[role.home_area]
    return areas[0]


def api_token_get(*, token: str) -> ApiToken | None:
    """The active token with this value, of an active user, or None (unknown, revoked, user deactivated)."""
    if not token:
        return None
    return (
        ApiToken.objects.select_related("user")
        .filter(token_sha256=ApiToken.digest(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
