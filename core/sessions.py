"""Database sessions whose idle deadline is renewed at most once a minute, not written on every request.

Writing the session row on every request (``SESSION_SAVE_EVERY_REQUEST``) costs each page an UPDATE and
a commit. Instead the store remembers the deadline it loaded, and ``IdleSessionMiddleware`` saves the
session (pushing the deadline a full ``SESSION_COOKIE_AGE`` ahead) only when it changed or when the
deadline is more than ``SESSION_RENEW_AFTER_SECONDS`` old. A session therefore ends between
``SESSION_COOKIE_AGE - SESSION_RENEW_AFTER_SECONDS`` and ``SESSION_COOKIE_AGE`` after the last request.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.utils import timezone


class SessionStore(DatabaseSessionStore):
    loaded_expire_date: datetime | None = None

    def _get_session_from_db(self) -> Any:
        found = super()._get_session_from_db()  # type: ignore[misc]  # django-stubs lacks this private method
        self.loaded_expire_date = found.expire_date if found is not None else None
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
