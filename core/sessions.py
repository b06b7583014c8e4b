"""Database sessions whose idle deadline is renewed at most once a minute, not written on every request.

Writing the session row on every request (``SESSION_SAVE_EVERY_REQUEST``) costs each page an UPDATE and
a commit. Instead the store remembers the deadline it loaded, and ``IdleSessionMiddleware`` saves the
session (pushing the deadline a full ``SESSION_COOKIE_AGE`` ahead) only when it changed or when the
deadline is more than ``SESSION_RENEW_AFTER_SECONDS`` old. A session therefore ends between
``SESSION_COOKIE_AGE - SESSION_RENEW_AFTER_SECONDS`` and ``SESSION_COOKIE_AGE`` after the last request.

Sessions live in ``core.StaffSession``, which keeps the signed-in user's id in a column: on PostgreSQL the
statement that reads the session reads the user and their permissions too (``core.backends``), and
``AuthenticationMiddleware`` hands that user to Django's own ``auth.get_user``, which still checks the
backend and the session's password hash as it always does. One statement per signed-in request, not two.
"""

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connections, router
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from core.backends import signed_in_user, user_from_row, user_with_permissions_columns
from core.models import StaffSession


@functools.cache
def _session_sql(*, with_user: bool) -> str:
    """The live session row by key; ``with_user``, its user's columns and permissions after it (PostgreSQL)."""
    meta = StaffSession._meta
    columns_by_name = {field.name: field.column for field in meta.concrete_fields}
    data, expire, key, user_id = (
        columns_by_name[name] for name in ("session_data", "expire_date", "session_key", "user_id")
    )
    if not with_user:
        return f'SELECT s."{data}", s."{expire}" FROM "{meta.db_table}" s WHERE s."{key}" = %s AND s."{expire}" > %s'  # noqa: S608
    user_columns, _ = user_with_permissions_columns("u")
    return (
        f'SELECT s."{data}", s."{expire}", {user_columns} FROM "{meta.db_table}" s '  # noqa: S608
        f'LEFT JOIN "{User._meta.db_table}" u ON u."{User._meta.pk.column}" = s."{user_id}" '
        f'WHERE s."{key}" = %s AND s."{expire}" > %s'
    )


class SessionStore(DatabaseSessionStore):
    loaded_expire_date: datetime | None = None
    # The user whose id the session row names, read with it (PostgreSQL); None when there is none.
    signed_in_user: User | None = None

    @classmethod
    def get_model_class(cls) -> type[StaffSession]:
        return StaffSession

    def create_model_instance(self, data: dict[str, Any]) -> StaffSession:
        session = super().create_model_instance(data)
        assert isinstance(session, StaffSession)  # noqa: S101 (get_model_class says so)
        try:
            session.user_id = int(data[SESSION_KEY])
        except (KeyError, TypeError, ValueError):
            session.user_id = None
        return session

    def _get_session_from_db(self) -> Any:
        """Django's read of the live session row, as a statement written once: every request makes it,
        and building it through the ORM cost more than running it. On PostgreSQL the session's user comes
        with it."""
        model = self.model
        alias = router.db_for_read(model)
        connection = connections[alias]
        with_user = connection.vendor == "postgresql" and get_user_model() is User
        with connection.cursor() as cursor:
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            cursor.execute(_session_sql(with_user=with_user), [self.session_key, now])
            row = cursor.fetchone()
        self.signed_in_user = None
        if row is None:
            self._session_key = None
            self.loaded_expire_date = None
            return None
        data, expire_date, *user_row = row
        if user_row and user_row[0] is not None:
            _, names = user_with_permissions_columns("u")
            self.signed_in_user = user_from_row(router.db_for_read(User), names, user_row)
        if settings.USE_TZ and timezone.is_naive(expire_date):  # SQLite keeps UTC without a zone
            expire_date = timezone.make_aware(expire_date, UTC)
        found = model(session_key=self.session_key or "", session_data=data, expire_date=expire_date)
        self.loaded_expire_date = found.expire_date
        return found

    def renewal_due(self) -> bool:
        """The deadline loaded with the session is due for renewal (or there was none)."""
        if self.loaded_expire_date is None:
            return True
        renewed_at = self.loaded_expire_date - timedelta(seconds=settings.SESSION_COOKIE_AGE)
        return timezone.now() - renewed_at >= timedelta(seconds=settings.SESSION_RENEW_AFTER_SECONDS)


class IdleSessionMiddleware(SessionMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if (
            isinstance(session, SessionStore)
            and session.accessed
            and not session.is_empty()
            and session.renewal_due()
        ):
            session.modified = True
        return super().process_response(request, response)


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's, handing Django's ``auth.get_user`` the user the session store read with the session."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(functools.partial(_user_get, request))  # type: ignore[assignment]


def _user_get(request: HttpRequest) -> Any:
    if not hasattr(request, "_cached_user"):
        session = request.session
        session.get(SESSION_KEY)  # loads the session, and with it the user (once per request)
        token = signed_in_user.set(getattr(session, "signed_in_user", None))
        try:
            request._cached_user = auth.get_user(request)  # type: ignore[attr-defined]
        finally:
            signed_in_user.reset(token)
    return request._cached_user  # type: ignore[attr-defined]
