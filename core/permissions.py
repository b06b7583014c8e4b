"""Object-level access through django-guardian, in one place.

A global (model) permission grants access to every object; otherwise an object grant is needed.
Object grants are made only inside services, through ``object_permission_grant``.
"""

from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import PermissionDenied
from django.db import models
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm


class ObjectAccessDenied(PermissionDenied):
    """The user lacks the permission on this object."""


def _qualified(perm: str, obj_or_model: models.Model | type[models.Model]) -> str:
    if "." in perm:
        return perm
    return f"{obj_or_model._meta.app_label}.{perm}"


def has_object_access(user: User | AnonymousUser, perm: str, obj: models.Model) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    qualified = _qualified(perm, obj)
    return user.has_perm(qualified) or user.has_perm(qualified, obj)


def access_object[ModelT: models.Model](user: User | AnonymousUser, perm: str, obj: ModelT) -> ModelT:
    """Return ``obj`` when ``user`` holds ``perm`` on it (globally or on the object); else raise."""
    if not has_object_access(user, perm, obj):
        raise ObjectAccessDenied(f"Missing permission {_qualified(perm, obj)} on this object.")
    return obj


def objects_for_user[ModelT: models.Model](
    user: User | AnonymousUser, perm: str, queryset: models.QuerySet[ModelT]
) -> models.QuerySet[ModelT]:
    """Narrow ``queryset`` to the objects ``user`` may see under ``perm``."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    qualified = _qualified(perm, queryset.model)
    return get_objects_for_user(user, qualified, klass=queryset, accept_global_perms=True)


def object_permission_grant(*, perm: str, grantee: User | Group, obj: models.Model) -> None:
    assign_perm(_qualified(perm, obj), grantee, obj)


def object_permission_revoke(*, perm: str, grantee: User | Group, obj: models.Model) -> None:
    remove_perm(_qualified(perm, obj), grantee, obj)
