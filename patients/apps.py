from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from patients.models import InboundPayload, MatchReview, Patient, PatientLink, PatientMerge, Source

        # Source changes are audited without secrets (the token hash; connector settings, which can hold a
        # pull token or private key); payload status changes (replays) without the body.
        auditlog.register(Source, exclude_fields=["api_token_sha256", "connector_settings", "updated_at"])
        auditlog.register(InboundPayload, include_fields=["status", "options", "attempts"])
        # The patient index: who was linked where, by whom, and merges; demographics stay out of the log
        # (the golden record is derived from the audited source records and recomputed).
        auditlog.register(PatientLink, include_fields=["patient", "state", "origin", "decided_by"])
        auditlog.register(Patient, include_fields=["merged_into", "is_active"])
        auditlog.register(MatchReview, include_fields=["status", "decided_by"])
        auditlog.register(PatientMerge, include_fields=["unmerged_at", "unmerged_by", "unmerge_reason"])
