"""Django's model authentication backend, reading a user's permissions with the user: one query instead of
three on every staff request (none when the session store read them with the session).

Every staff request loads the signed-in user and checks a permission; Django reads the user, then the
user's own permissions and their groups' permissions, as three statements, each built through the ORM.
On PostgreSQL the user row comes with the permission names in one statement written once; elsewhere (the
embedded SQLite) the user and then the permissions in one more. Everything else is Django's.
"""

import functools
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connections, router
from django.db.models import Q


@functools.cache
def user_with_permissions_columns(alias: str) -> tuple[str, list[str]]:
    """The columns of a user (table alias ``alias``) and, last, an array of their "app_label.codename"
    permissions (all of them for a superuser); and the model's field names in the order of the columns."""
    user_meta = User._meta
    fields = list(user_meta.concrete_fields)
    permission, content_type = Permission._meta, ContentType._meta
    user_permissions = User.user_permissions.through._meta
    user_groups = User.groups.through._meta
    group_permissions = Group.permissions.through._meta
    columns = ", ".join(f'{alias}."{field.column}"' for field in fields)
    pk = user_meta.pk.column
    sql = (
        f"{columns}, ARRAY("  # noqa: S608 (names from the models' metadata)
        f'SELECT ct."app_label" || \'.\' || p."codename" FROM "{permission.db_table}" p '
        f'JOIN "{content_type.db_table}" ct ON ct."id" = p."content_type_id" '
        f'WHERE {alias}."is_superuser" OR p."id" IN ('
        f'SELECT "permission_id" FROM "{user_permissions.db_table}" WHERE "user_id" = {alias}."{pk}" UNION ALL '
        f'SELECT gp."permission_id" FROM "{group_permissions.db_table}" gp '
        f'JOIN "{user_groups.db_table}" ug ON ug."group_id" = gp."group_id" WHERE ug."user_id" = {alias}."{pk}")'
        ")"
    )
    return sql, [field.attname for field in fields]


@functools.cache
def _user_with_permissions_sql() -> tuple[str, list[str]]:
    """SELECT of a user by id with their permissions (``user_with_permissions_columns``)."""
    columns, names = user_with_permissions_columns("u")
    meta = User._meta
    return f'SELECT {columns} FROM "{meta.db_table}" u WHERE u."{meta.pk.column}" = %s', names  # noqa: S608


def user_from_row(alias: str, names: list[str], row: Sequence[Any]) -> User:
    """The user of a ``user_with_permissions_columns`` row, their permissions cached as Django caches them."""
    user = User.from_db(alias, names, row[:-1])
    user._perm_cache = set(row[-1])  # type: ignore[attr-defined]  # Django's own cache attribute
    return user


# The user the session store read with the session, for the ``get_user`` of the request being authenticated
# (set by ``core.sessions.AuthenticationMiddleware`` around Django's ``auth.get_user``, and only then).
signed_in_user: ContextVar[User | None] = ContextVar("signed_in_user", default=None)


class ModelBackend(DjangoModelBackend):
    def get_user(self, user_id: Any) -> Any:
        user_model = get_user_model()
        alias = router.db_for_read(user_model)
        connection = connections[alias]
        if connection.vendor != "postgresql" or user_model is not User:
            return super().get_user(user_id)
        try:
            user_id = user_model._meta.pk.to_python(user_id)
        except Exception:  # a session with a malformed id: nobody is signed in, as Django answers
            return None
        read_with_the_session = signed_in_user.get()
        if read_with_the_session is not None and read_with_the_session.pk == user_id:
            return read_with_the_session if self.user_can_authenticate(read_with_the_session) else None
        sql, names = _user_with_permissions_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, [user_id])
            row = cursor.fetchone()
        if row is None:
            return None
        user = user_from_row(alias, names, row)
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            permissions = (
                Permission.objects.all()
                if user_obj.is_superuser
                else Permission.objects.filter(Q(user=user_obj) | Q(group__user=user_obj))
            )
            rows = permissions.values_list("content_type__app_label", "codename").order_by()
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in rows}
        found: set[str] = user_obj._perm_cache
        return found
