import hashlib

from django.db import models
from django.db.models import Q

from core.models import BaseModel


class PatientsArea(models.Model):
    """Holds the area-wide permissions of the Patients app; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("access_patients", "Can open the Patients area")]

    def __str__(self) -> str:
        return "patients area"


class Source(BaseModel):
    """A source system Concord takes data from: an EHR, a CRM, a payer platform, a lab, ..."""

    class Kind(models.TextChoices):
        EHR = "ehr", "EHR"
        CRM = "crm", "CRM"
        PAYER = "payer", "Payer"
        ENGAGEMENT = "engagement", "Engagement"
        LAB = "lab", "Lab"
        OTHER = "other", "Other"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    department = models.CharField(max_length=200, blank=True, help_text="Owning department.")
    jurisdiction = models.CharField(
        max_length=2, blank=True, help_text="US state (USPS code) whose rules apply."
    )
    connector_settings = models.JSONField(default=dict, blank=True)
    # Only a hash of the API token is kept; the token itself is shown once when it is issued.
    api_token_sha256 = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    api_token_prefix = models.CharField(max_length=8, blank=True, editable=False)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        permissions = [("replay_payload", "Can replay quarantined payloads")]

    @staticmethod
    def token_digest(token: str) -> str:
        """What is stored of an API token, and what an incoming token is compared by."""
        return hashlib.sha256(token.encode()).hexdigest()

    def __str__(self) -> str:
        return self.name


class InboundPayload(BaseModel):
    """One payload exactly as it arrived, stored before any parsing. Never deleted by processing."""

    class Format(models.TextChoices):
        FHIR = "fhir", "FHIR R4 JSON"
        CSV = "csv", "CSV export"
        HL7V2 = "hl7v2", "HL7 v2"

    class Channel(models.TextChoices):
        API = "api", "FHIR API push"
        FILE = "file", "File import"
        MLLP = "mllp", "MLLP listener"
        PULL = "pull", "FHIR pull"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        ACCEPTED = "accepted", "Accepted"
        QUARANTINED = "quarantined", "Quarantined"

    # Covered by the (source, sha256) unique constraint.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="payloads", db_index=False)
    received_at = models.DateTimeField(db_index=True)
    last_received_at = models.DateTimeField()
    times_received = models.PositiveIntegerField(default=1)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    format = models.CharField(max_length=10, choices=Format.choices)
    content_type = models.CharField(max_length=200, blank=True)
    origin = models.CharField(max_length=500, blank=True, help_text="File name or endpoint it came through.")
    body = models.BinaryField()
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    options = models.JSONField(
        default=dict, blank=True, help_text="How to read it, e.g. a CSV column mapping."
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why it was quarantined (first problem).")
    problems = models.JSONField(default=list, blank=True, help_text="Every problem: location and message.")
    outcome = models.JSONField(
        default=dict, blank=True, help_text="Resources stored by type and per-entry results."
    )

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "sha256"], name="patients_payload_once_per_source"),
        ]
        indexes = [
            models.Index(fields=["source", "status"], name="patients_payload_source_status"),
        ]

    def __str__(self) -> str:
        return f"{self.source.slug} {self.format} {self.sha256[:12]} ({self.status})"


class SourcePatient(BaseModel):
    """A patient record as one source knows it (current version), with demographics extracted for matching."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="patients", db_index=False)
    source_record_id = models.CharField(max_length=128)
    version = models.PositiveIntegerField(default=1)
    content_sha256 = models.CharField(max_length=64)
    resource = models.JSONField(help_text="Normalized FHIR R4 Patient.")
    # Payloads are never deleted, and nothing looks records up by payload: no index to maintain on ingest.
    payload = models.ForeignKey(InboundPayload, on_delete=models.PROTECT, related_name="+", db_index=False)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    family_name = models.CharField(max_length=200, blank=True)
    given_names = models.CharField(max_length=200, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    gender = models.CharField(max_length=10, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="First phone, E.164.")
    email = models.CharField(max_length=254, blank=True)
    postal_code = models.CharField(max_length=10, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["source", "source_record_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_record_id"], name="patients_sourcepatient_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["family_name", "birth_date"], name="patients_srcpat_family_dob"),
            models.Index(fields=["birth_date"], name="patients_srcpat_dob"),
            models.Index(fields=["phone"], name="patients_srcpat_phone", condition=~Q(phone="")),
            models.Index(fields=["email"], name="patients_srcpat_email", condition=~Q(email="")),
        ]

    def __str__(self) -> str:
        return f"{self.source.slug}/Patient/{self.source_record_id}"


class SourceResource(models.Model):
    """Any other resource from a source (current version): full FHIR JSON plus indexed columns.

    Not a BaseModel: these rows are addressed by source, type and id (the FHIR way), never by a UUID of
    their own, and a random-UUID unique index on the largest table would slow every ingest.
    """

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="resources", db_index=False)
    resource_type = models.CharField(max_length=64)
    source_record_id = models.CharField(max_length=128)
    version = models.PositiveIntegerField(default=1)
    content_sha256 = models.CharField(max_length=64)
    resource = models.JSONField(help_text="Normalized FHIR R4 resource, references rewritten to Type/id.")
    # Payloads are never deleted, and nothing looks records up by payload: no index to maintain on ingest.
    payload = models.ForeignKey(InboundPayload, on_delete=models.PROTECT, related_name="+", db_index=False)
    # Covered by the (patient, resource_type, -effective_at) index.
    patient = models.ForeignKey(
        SourcePatient,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resources",
        db_index=False,
    )
    patient_source_id = models.CharField(
        max_length=128, blank=True, help_text="Source id of the patient referenced, even before it arrives."
    )
    code_system = models.CharField(max_length=200, blank=True)
    code = models.CharField(max_length=100, blank=True)
    effective_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["source", "resource_type", "source_record_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type", "source_record_id"], name="patients_sourceresource_unique"
            ),
        ]
        indexes = [
            models.Index(
                fields=["patient", "resource_type", "-effective_at"], name="patients_srcres_patient_type"
            ),
            models.Index(fields=["resource_type", "code_system", "code"], name="patients_srcres_code"),
            models.Index(
                fields=["source", "patient_source_id"],
                name="patients_srcres_waiting",
                condition=Q(patient__isnull=True) & ~Q(patient_source_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source.slug}/{self.resource_type}/{self.source_record_id}"


class ResourceVersion(models.Model):
    """A superseded version of a source record, kept when a newer one replaces it."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_index=False)
    resource_type = models.CharField(max_length=64)
    source_record_id = models.CharField(max_length=128)
    version = models.PositiveIntegerField()
    content_sha256 = models.CharField(max_length=64)
    resource = models.JSONField()
    # Payloads are never deleted, and nothing looks records up by payload: no index to maintain on ingest.
    payload = models.ForeignKey(InboundPayload, on_delete=models.PROTECT, related_name="+", db_index=False)
    stored_at = models.DateTimeField(help_text="When this version became current.")
    superseded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source", "resource_type", "source_record_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type", "source_record_id", "version"],
                name="patients_resourceversion_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.source_record_id} v{self.version}"


class SourceIdentifier(models.Model):
    """Business identifiers of source records, so conditional references (Type?identifier=s|v) resolve."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+", db_index=False)
    resource_type = models.CharField(max_length=64)
    system = models.CharField(max_length=300)
    value = models.CharField(max_length=300)
    source_record_id = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type", "system", "value"], name="patients_sourceidentifier_unique"
            ),
        ]
        indexes = [models.Index(fields=["system", "value"], name="patients_srcident_system_value")]

    def __str__(self) -> str:
        return f"{self.resource_type}?identifier={self.system}|{self.value}"


class PullCheckpoint(models.Model):
    """How far a FHIR pull of one resource type from one source has come, so the next pull resumes there."""

    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="pull_checkpoints", db_index=False
    )
    resource_type = models.CharField(max_length=64)
    # Kept as the server wrote it: the next query sends it back unchanged, with no time zone rounding.
    high_water_mark = models.CharField(
        max_length=64, blank=True, help_text="Greatest meta.lastUpdated seen, as the server wrote it."
    )
    # Not a URLField: servers on single-label internal host names (fhir-gateway:8080) are legitimate.
    next_url = models.CharField(
        max_length=2000, blank=True, help_text="Page to resume from when the last pull stopped midway."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source", "resource_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type"], name="patients_pullcheckpoint_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source.slug}/{self.resource_type} pull checkpoint"
