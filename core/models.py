import hashlib
import secrets
import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.utils import timezone


def uuid7() -> uuid.UUID:
    """A version 7 UUID (RFC 9562): milliseconds since the epoch in the first 48 bits, then random bits, so
    that ids drawn later sort later."""
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & (2**48 - 1)) << 80 | secrets.randbits(80)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return uuid.UUID(int=value)


class BaseModel(models.Model):
    """Base for domain models: a stable public UUID for URLs and APIs, and timestamps.

    The integer primary key stays internal; nothing outside the database should depend on it.
    """

    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AccessEvent(models.Model):
    """One read (or export) of protected health information: who, which patient/object, when, from where, why.

    Rows are append-only: services create them, nothing updates or deletes them.
    """

    class Action(models.TextChoices):
        READ = "read", "Read"
        SEARCH = "search", "Search"
        EXPORT = "export", "Export"
        BREAK_GLASS = "break_glass", "Break the glass"

    class Channel(models.TextChoices):
        HTML = "html", "Web page"
        API = "api", "REST API"
        FHIR = "fhir", "FHIR API"
        TASK = "task", "Background task"
        CLI = "cli", "Command line"

    # Time-ordered (version 7), so that its unique index is written at its end: with random ids each read
    # recorded touched a random page of that index, and after every checkpoint the first change of a page
    # writes all of it to the write-ahead log (a search's 25 rows wrote about 200 KB of WAL, 100 KB without
    # random ids). ``core.audit`` draws them in the database with the same layout.
    external_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No foreign-key constraint in the database: checking one took a share lock on the user's row for
    # every audit insert (every page view and search). Django still refuses to delete a user with access
    # events (PROTECT), and the username is kept beside the id. Indexed with the time below.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="access_events",
        db_constraint=False,
        db_index=False,
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.READ)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    patient_ref = models.CharField(
        max_length=64, blank=True, help_text="External id of the patient whose data was read."
    )
    object_type = models.CharField(
        max_length=100, blank=True, help_text="app_label.model of the object read."
    )
    object_ref = models.CharField(max_length=64, blank=True)
    purpose = models.CharField(max_length=200)
    path = models.CharField(max_length=500, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        default_permissions = ("view",)
        # What a user read, and who opened a patient's data, newest first; nothing else (every read inserts).
        # The patient index leaves out search listings: a search records up to 25 patients on every key
        # typed, each at a random page of an index keyed by patient (25 pages read and dirtied for one
        # search), 25 times the patient pages' volume. Who saw a patient listed in a search is found by
        # time (occurred_at) and patient, without that index.
        indexes = [
            models.Index(fields=["actor", "-occurred_at"], name="core_access_actor_time"),
            models.Index(
                fields=["patient_ref", "-occurred_at"],
                name="core_access_patient_time",
                condition=~models.Q(action="search"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(patient_ref="") | ~models.Q(object_ref=""),
                name="core_access_event_names_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.actor_username or 'system'} {self.action} {self.patient_ref or self.object_ref}"


class OutboxEvent(BaseModel):
    """A domain event recorded in the same transaction as the change that caused it (transactional outbox).

    Producers write rows through ``core.outbox.outbox_record``; consumers read the unpublished queue and mark
    what they took. The payload holds ids and codes only, never names or contact details.
    (event type, aggregate, dedupe key) is unique, so re-processing the same data records nothing twice.
    """

    event_type = models.CharField(max_length=100, help_text='Dotted name, e.g. "patient.discharged".')
    aggregate_type = models.CharField(max_length=100, help_text="app_label.model of the record it is about.")
    aggregate_ref = models.CharField(max_length=300, help_text="Stable reference of that record.")
    dedupe_key = models.CharField(
        max_length=100, help_text="What makes this occurrence distinct, e.g. a version or a discharge time."
    )
    patient_ref = models.CharField(
        max_length=300, blank=True, db_index=True, help_text="Reference of the patient record, if any."
    )
    payload = models.JSONField(default=dict, blank=True, help_text="Ids and codes only.")
    occurred_at = models.DateTimeField(help_text="When it happened clinically, if known; else when recorded.")
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["recorded_at", "id"]
        default_permissions = ("view",)
        indexes = [models.Index(fields=["published_at", "recorded_at"], name="core_outbox_pending")]
        constraints = [
            models.UniqueConstraint(
                fields=["event_type", "aggregate_ref", "dedupe_key"], name="core_outbox_event_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_ref}"


class ApiToken(BaseModel):
    """A bearer token an API client (a script, an integration) uses to act as one staff user.

    Only a SHA-256 digest is kept: the token is shown once, when it is issued (``manage.py api_token``).
    A token is never deleted, only revoked, so the record of who could act how stays.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    prefix = models.CharField(max_length=12, help_text="First characters of the token, to recognize it.")
    token_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def digest(token: str) -> str:
        """What is stored of a token, and what an incoming token is looked up by."""
        return hashlib.sha256(token.encode()).hexdigest()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class StaffSession(AbstractBaseSession):
    """A signed-in session (``core.sessions``), with its user's id in a column of its own, so that every
    request reads the user and their permissions in the statement that reads the session."""

    user_id = models.IntegerField(null=True, blank=True, help_text="The signed-in user, if any.")

    class Meta(AbstractBaseSession.Meta):
        db_table = "core_staff_session"

    @classmethod
    def get_session_store_class(cls) -> type[Any]:
        from core.sessions import SessionStore

        return SessionStore
