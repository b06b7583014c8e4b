"""Who is acting, for code that runs outside a request (Celery tasks, management commands)."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from auditlog.context import set_actor

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_actor: ContextVar["User | None"] = ContextVar("concord_actor", default=None)


def current_actor() -> "User | None":
    return _actor.get()


@contextmanager
def acting_as(actor: "User | None") -> Iterator["User | None"]:
    """Attribute every audited write (django-auditlog) and PHI read inside the block to ``actor``."""
    token = _actor.set(actor)
    try:
        if actor is None:
            yield None
        else:
            with set_actor(actor):
                yield actor
    finally:
        _actor.reset(token)
