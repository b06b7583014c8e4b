from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from patients.models import InboundPayload, Source

        # Source changes are audited without secrets (the token hash; connector settings, which can hold a
        # pull token or private key); payload status changes (replays) without the body.
        auditlog.register(Source, exclude_fields=["api_token_sha256", "connector_settings", "updated_at"])
        auditlog.register(InboundPayload, include_fields=["status", "options", "attempts"])
