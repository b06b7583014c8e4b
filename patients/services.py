"""Writes on source systems: registration and API tokens."""

import logging
import secrets
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from core.context import acting_as
from core.errors import ApplicationError
from patients.models import Source

logger = logging.getLogger(__name__)


@transaction.atomic
def source_create(
    *,
    actor: User | None,
    slug: str,
    name: str,
    kind: str = Source.Kind.OTHER,
    department: str = "",
    jurisdiction: str = "",
    connector_settings: dict[str, Any] | None = None,
) -> Source:
    if Source.objects.filter(slug=slug).exists():
        raise ApplicationError(f"A source with slug {slug!r} already exists.")
    source = Source(
        slug=slug,
        name=name,
        kind=kind,
        department=department,
        jurisdiction=jurisdiction.upper(),
        connector_settings=connector_settings or {},
    )
    source.full_clean()
    with acting_as(actor):
        source.save()
    return source


def source_ensure(
    *, actor: User | None, slug: str, name: str = "", kind: str = Source.Kind.OTHER
) -> tuple[Source, bool]:
    """The source with this slug; created (kind ``other`` unless given) when unknown. Returns (source, created)."""
    source = Source.objects.filter(slug=slug).first()
    if source is not None:
        return source, False
    try:
        with transaction.atomic():
            created = source_create(
                actor=actor, slug=slug, name=name or slug.replace("-", " ").title(), kind=kind
            )
    except (IntegrityError, ApplicationError):
        # Another process created it at the same moment: use that one.
        return Source.objects.get(slug=slug), False
    return created, True


@transaction.atomic
def source_token_issue(*, actor: User | None, source: Source) -> str:
    """Issue a new API token for the source (the old one stops working). The token is returned only here."""
    token = f"cst_{secrets.token_urlsafe(32)}"
    source.api_token_sha256 = Source.token_digest(token)
    source.api_token_prefix = token[:8]
    with acting_as(actor):
        source.save(update_fields=["api_token_sha256", "api_token_prefix", "updated_at"])
    logger.info("API token issued for source %s", source.slug)
    return token
