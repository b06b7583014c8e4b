from typing import Any

import jellyfish
from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _levenshtein_less_equal(text: str | None, other: str | None, limit: int) -> int | None:
    """PostgreSQL fuzzystrmatch's ``levenshtein_less_equal``: the distance when at most ``limit``."""
    if text is None or other is None:
        return None
    return min(jellyfish.levenshtein_distance(text, other), limit + 1)


def _sqlite_functions_add(sender: Any, connection: Any, **kwargs: Any) -> None:
    """The PostgreSQL functions patient search uses, for the embedded SQLite database."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "levenshtein_less_equal", 3, _levenshtein_less_equal, deterministic=True
        )


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self) -> None:
        connection_created.connect(_sqlite_functions_add, dispatch_uid="patients-sqlite-functions")

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
