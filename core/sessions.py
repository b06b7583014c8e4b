"""Database sessions whose idle deadline is renewed at most once a minute, not written on every request.

Writing the session row on every request (``SESSION_SAVE_EVERY_REQUEST``) costs each page an UPDATE and
a commit. Instead the store remembers the deadline it loaded, and ``IdleSessionMiddleware`` saves the
session (pushing the deadline a full ``SESSION_COOKIE_AGE`` ahead) only when it changed or when the
deadline is more than ``SESSION_RENEW_AFTER_SECONDS`` old. A session therefore ends between
``SESSION_COOKIE_AGE - SESSION_RENEW_AFTER_SECONDS`` and ``SESSION_COOKIE_AGE`` after the last request.
"""

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connections, router
from django.http import HttpRequest, HttpResponse
from django.utils import timezone


@functools.cache
def _session_sql(model: Any) -> str:
    meta = model._meta
    data, expire, key = (
        meta.get_field(name).column for name in ("session_data", "expire_date", "session_key")
    )
    return f'SELECT "{data}", "{expire}" FROM "{meta.db_table}" WHERE "{key}" = %s AND "{expire}" > %s'  # noqa: S608


class SessionStore(DatabaseSessionStore):
    loaded_expire_date: datetime | None = None

    def _get_session_from_db(self) -> Any:
        """Django's read of the live session row, as a statement written once: every request makes it,
        and building it through the ORM cost more than running it."""
        model = self.model
        connection = connections[router.db_for_read(model)]
        with connection.cursor() as cursor:
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            cursor.execute(_session_sql(model), [self.session_key, now])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            self.loaded_expire_date = None
            return None
        data, expire_date = row
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
