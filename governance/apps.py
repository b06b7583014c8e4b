from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from governance.models import TerminologyMap

        # Who mapped what: a steward's map re-normalizes stored clinical data.
        auditlog.register(TerminologyMap, exclude_fields=["updated_at"])
