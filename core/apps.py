from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Concord core"

    def ready(self) -> None:
        from auditlog.registry import auditlog
        from django.contrib.auth.models import Group, User

        from core.models import ApiToken

        # Staff accounts and role membership are audited; secrets never reach the audit log.
        auditlog.register(User, exclude_fields=["password", "last_login"], m2m_fields={"groups"})
        auditlog.register(Group, m2m_fields={"permissions"})
        # Issuing and revoking tokens is audited; the digest and each use are not changes worth a row.
        auditlog.register(ApiToken, exclude_fields=["token_sha256", "last_used_at", "updated_at"])
