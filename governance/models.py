from django.db import models
from django.db.models import Q

from core.models import BaseModel


class GovernanceArea(models.Model):
    """Holds the area-wide permissions of the Governance app; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("access_governance", "Can open the Governance area")]

    def __str__(self) -> str:
        return "governance area"


class TerminologyMap(BaseModel):
    """A source's local code (or free-text name) and the standard code it means.

    `source` empty: the entry holds for every source. `local_code` "*": every code of `local_system` is the
    same code in `standard_system` (an OID or an HL7 v2 coding-system id for a standard system).
    """

    class Origin(models.TextChoices):
        SHIPPED = "shipped", "Shipped default"
        STEWARD = "steward", "Data steward"

    source = models.ForeignKey(
        "patients.Source",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Leave empty for a map that holds for every source.",
    )
    local_system = models.CharField(max_length=200, blank=True)
    local_code = models.CharField(
        max_length=100, blank=True, help_text='"*" maps a whole system, code for code.'
    )
    alias = models.CharField(
        max_length=200, blank=True, help_text="Free text that names the concept (compared normalized)."
    )
    standard_system = models.CharField(max_length=200)
    standard_code = models.CharField(max_length=100, blank=True)
    standard_display = models.CharField(max_length=300, blank=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.STEWARD)
    note = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["standard_system", "local_system", "local_code", "alias"]
        constraints = [
            models.UniqueConstraint(
                fields=["local_system", "local_code", "alias"],
                condition=Q(source__isnull=True),
                name="governance_termmap_unique_all_sources",
            ),
            models.UniqueConstraint(
                fields=["source", "local_system", "local_code", "alias"],
                condition=Q(source__isnull=False),
                name="governance_termmap_unique_per_source",
            ),
            models.CheckConstraint(
                condition=(~Q(local_code="") & Q(alias="")) | (Q(local_code="") & ~Q(alias="")),
                name="governance_termmap_code_or_alias",
            ),
            models.CheckConstraint(
                condition=Q(local_code="*") | ~Q(standard_code=""),
                name="governance_termmap_standard_code",
            ),
        ]

    def __str__(self) -> str:
        local = f"{self.local_system}|{self.local_code}" if self.local_code else f'"{self.alias}"'
        return f"{local} -> {self.standard_system}|{self.standard_code or '*'}"


class UnmappedCode(BaseModel):
    """A local code (or free text) seen at ingestion that no map or policy turned into a standard code."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        MAPPED = "mapped", "Mapped"
        IGNORED = "ignored", "Ignored"

    # Covered by the unique constraint, which starts with the source.
    source = models.ForeignKey("patients.Source", on_delete=models.PROTECT, related_name="+", db_index=False)
    resource_type = models.CharField(max_length=64)
    system = models.CharField(max_length=200, blank=True)
    code = models.CharField(max_length=100, blank=True)
    alias = models.CharField(max_length=200, blank=True, help_text="Normalized text, when there is no code.")
    display = models.CharField(max_length=300, blank=True)
    count = models.PositiveBigIntegerField(default=0, help_text="Resources seen with it.")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    terminology_map = models.ForeignKey(
        TerminologyMap, null=True, blank=True, on_delete=models.SET_NULL, related_name="unmapped_codes"
    )

    class Meta:
        ordering = ["status", "-count"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type", "system", "code", "alias"],
                name="governance_unmappedcode_unique",
            ),
        ]
        indexes = [models.Index(fields=["status", "-count"], name="governance_unmapped_queue")]

    def __str__(self) -> str:
        local = f"{self.system}|{self.code}" if self.code else f'"{self.display}"'
        return f"{local} ({self.resource_type}, {self.count}x)"


class RenormalizationRun(BaseModel):
    """Re-normalization of the stored resources a new terminology map affects, with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    terminology_map = models.ForeignKey(TerminologyMap, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    candidates = models.PositiveIntegerField(default=0, help_text="Stored resources to look at.")
    examined = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0, help_text="Resources that gained a standard code.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"re-normalization for {self.terminology_map} ({self.status})"
