import hashlib

from django.conf import settings
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


class InboundPayloadManager(models.Manager["InboundPayload"]):
    """Payloads without their bytes, which only processing reads (and asks for): lists, the summary of an
    import, a repeat's digest lookup and django-auditlog's read of the row before a status change no
    longer carry a payload of up to the size limit back from the database. A body read off a payload
    fetched so is loaded then."""

    def get_queryset(self) -> models.QuerySet["InboundPayload"]:
        return super().get_queryset().defer("body")


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

    objects = InboundPayloadManager()

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
    match_features = models.JSONField(default=dict, blank=True, help_text="What matching compares.")

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


class SourceResourcesChange(models.Model):
    """A statement changed resources of a source record: written by PostgreSQL triggers, read by nothing
    else than the patient page cache (``patients.page_cache``).

    Every statement that inserts, updates or deletes rows of ``SourceResource`` (COPY and raw SQL included)
    adds one row for each source record whose resources it touched, old and new owner alike; so the page
    can tell that a record of 2,000 resources changed by reading its few change rows, not 2,000 resources.
    Rows are only ever added (one per record and ingested payload, about), so concurrent writers never wait
    on each other for them.
    """

    source_patient = models.ForeignKey(
        SourcePatient, on_delete=models.CASCADE, related_name="resource_changes", db_index=False
    )

    class Meta:
        indexes = [models.Index(fields=["source_patient", "id"], name="patients_srcres_changes")]

    def __str__(self) -> str:
        return f"record {self.source_patient_id}: resources changed ({self.pk})"


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
        indexes = [
            models.Index(fields=["system", "value"], name="patients_srcident_system_value"),
            # Staff search a record number without knowing which system issued it.
            models.Index(
                fields=["value"], name="patients_srcident_value", condition=Q(resource_type="Patient")
            ),
        ]

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


class Patient(BaseModel):
    """A golden patient: one real person, built from every source record linked to it.

    Demographic columns hold the survivorship winners (indexed for search); ``record`` holds the full
    golden record and ``provenance`` says, per field, which source record gave the value and by which rule.
    """

    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from"
    )
    is_active = models.BooleanField(default=True)
    family_name = models.CharField(max_length=200, blank=True)
    given_names = models.CharField(max_length=200, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    gender = models.CharField(max_length=10, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    email = models.CharField(max_length=254, blank=True)
    postal_code = models.CharField(max_length=10, blank=True)
    city = models.CharField(max_length=100, blank=True)
    preferred_language = models.CharField(max_length=20, blank=True)
    # Phonetic codes of the golden names, so that search finds "Smyth" for Smith and "Jon" for John.
    family_phonetic = models.CharField(max_length=40, blank=True)
    given_phonetic = models.CharField(max_length=40, blank=True)
    record = models.JSONField(default=dict, blank=True, help_text="Golden record: field -> value.")
    provenance = models.JSONField(default=dict, blank=True, help_text="Field -> where the value came from.")
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["family_name", "given_names"]
        permissions = [
            ("match_patient", "Can search the patient index ($match)"),
            ("merge_patient", "Can merge and unmerge golden patients"),
            ("decide_match", "Can decide possible matches and duplicates"),
        ]
        indexes = [
            models.Index(fields=["family_name", "birth_date"], name="patients_patient_family_dob"),
            models.Index(fields=["birth_date"], name="patients_patient_dob"),
            # Search reads the names of everyone sharing a name's phonetic code from these two, without
            # reading their rows (index-only scans), and compares a misspelled family name with those of
            # everyone sharing the first name's code in the second.
            models.Index(
                fields=["family_phonetic", "given_phonetic"],
                include=["id", "is_active", "family_name", "given_names"],
                name="patients_patient_phonetic",
            ),
            models.Index(
                fields=["given_phonetic", "family_name"],
                include=["id", "is_active", "given_names", "family_phonetic"],
                name="patients_patient_given_family",
            ),
            models.Index(fields=["phone"], name="patients_patient_phone", condition=~Q(phone="")),
            models.Index(fields=["email"], name="patients_patient_email", condition=~Q(email="")),
        ]

    def __str__(self) -> str:
        return f"Patient {self.external_id}"


class MatchModel(models.Model):
    """Fellegi-Sunter weights (a trained Splink model) and the thresholds decisions are taken at."""

    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=False)
    splink_settings = models.JSONField(help_text="Splink settings with trained m and u probabilities.")
    term_frequencies = models.JSONField(default=dict, help_text="Column -> value -> share of records.")
    auto_match_probability = models.FloatField(default=0.99)
    review_probability = models.FloatField(default=0.5)
    record_count = models.PositiveIntegerField(default=0, help_text="Records it was trained on.")
    summary = models.JSONField(default=dict, blank=True, help_text="How it was trained.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="patients_matchmodel_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"match model {self.pk} ({'active' if self.is_active else 'inactive'})"


class PatientLink(BaseModel):
    """Which golden patient a source record belongs to, how that was decided, and why."""

    class State(models.TextChoices):
        MATCH = "MATCH", "Match"
        POSSIBLE_MATCH = "POSSIBLE_MATCH", "Possible match (steward review)"
        NO_MATCH = "NO_MATCH", "No match"

    class Origin(models.TextChoices):
        AUTO = "AUTO", "Automatic"
        MANUAL = "MANUAL", "Manual"

    source_patient = models.OneToOneField(SourcePatient, on_delete=models.PROTECT, related_name="link")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="links")
    state = models.CharField(max_length=16, choices=State.choices)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.AUTO)
    score = models.FloatField(
        null=True, blank=True, help_text="Match probability against the best candidate."
    )
    match_weight = models.FloatField(null=True, blank=True)
    matched_record = models.ForeignKey(
        SourcePatient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comparisons = models.JSONField(
        default=dict, blank=True, help_text="Per field: comparison level and its weight."
    )
    reason = models.CharField(max_length=300, blank=True)
    match_model = models.ForeignKey(
        MatchModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["state"], name="patients_link_state")]

    def __str__(self) -> str:
        return f"{self.source_patient_id} -> {self.patient_id} ({self.state})"


class MatchKey(models.Model):
    """A blocking key of a source record: records sharing a key are compared when one of them arrives."""

    source_patient = models.ForeignKey(
        SourcePatient, on_delete=models.CASCADE, related_name="match_keys", db_index=False
    )
    key = models.CharField(max_length=200)

    class Meta:
        indexes = [
            # (key, record) answers the candidate lookup from the index alone.
            models.Index(fields=["key", "source_patient"], name="patients_matchkey_key"),
            models.Index(fields=["source_patient"], name="patients_matchkey_record"),
        ]

    def __str__(self) -> str:
        return self.key


class MatchReview(BaseModel):
    """Work for a data steward: a record that may belong to a patient, or two patients that may be one."""

    class Kind(models.TextChoices):
        POSSIBLE_MATCH = "possible_match", "Possible match"
        POSSIBLE_DUPLICATE = "possible_duplicate", "Possible duplicate patients"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed (same person)"
        REJECTED = "rejected", "Rejected (different people)"
        OBSOLETE = "obsolete", "Obsolete"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    source_patient = models.ForeignKey(
        SourcePatient, null=True, blank=True, on_delete=models.CASCADE, related_name="match_reviews"
    )
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="match_reviews")
    other_patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="duplicate_reviews"
    )
    score = models.FloatField(null=True, blank=True)
    match_weight = models.FloatField(null=True, blank=True)
    comparisons = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "source_patient", "patient"],
                condition=Q(status="open"),
                name="patients_matchreview_open_once",
            ),
        ]
        indexes = [models.Index(fields=["status", "kind"], name="patients_matchreview_status")]

    def __str__(self) -> str:
        return f"{self.kind} ({self.status})"


class PatientMerge(BaseModel):
    """A merge of one golden patient into another, with the links it moved, so it can be undone exactly."""

    survivor = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="merges_received")
    duplicate = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="merges_given")
    moved_links = models.JSONField(default=list, help_text="Ids of the links moved to the survivor.")
    previous_links = models.JSONField(
        default=dict, help_text="Link id -> its state, origin and reason before the merge."
    )
    reason = models.CharField(max_length=300)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    unmerge_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"merge {self.duplicate_id} -> {self.survivor_id}"


class PatientConflict(BaseModel):
    """Trusted sources disagree on a key attribute of a golden patient: both values and their evidence."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="conflicts")
    field = models.CharField(max_length=40)
    values = models.JSONField(help_text="Each value with its source record, time and trust rank.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "field"], condition=Q(status="open"), name="patients_conflict_open_once"
            ),
        ]

    def __str__(self) -> str:
        return f"conflict on {self.field} ({self.status})"


class ResourceCoding(models.Model):
    """Every coding of a stored resource's main concept and categories, so search by code finds a resource
    by any of them: the source's own and the standard ones terminology normalization adds next to it
    (``SourceResource.code`` holds only the first). Rewritten whenever the resource changes.
    """

    class Element(models.TextChoices):
        CODE = "code", "Code"
        CATEGORY = "category", "Category"

    resource = models.ForeignKey(
        SourceResource, on_delete=models.CASCADE, related_name="codings", db_index=False
    )
    element = models.CharField(max_length=10, choices=Element.choices)
    system = models.CharField(max_length=200, blank=True)
    code = models.CharField(max_length=100)

    class Meta:
        indexes = [
            models.Index(fields=["code", "element", "system"], name="patients_rescoding_code"),
            models.Index(fields=["resource"], name="patients_rescoding_resource"),
        ]

    def __str__(self) -> str:
        return f"{self.element} {self.system}|{self.code}"
