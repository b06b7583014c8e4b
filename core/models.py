import uuid

from django.conf import settings
from django.db import models


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

    external_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="access_events",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.READ)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    patient_ref = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="External id of the patient whose data was read."
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
        indexes = [models.Index(fields=["actor", "-occurred_at"], name="core_access_actor_time")]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(patient_ref="") | ~models.Q(object_ref=""),
                name="core_access_event_names_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.actor_username or 'system'} {self.action} {self.patient_ref or self.object_ref}"
