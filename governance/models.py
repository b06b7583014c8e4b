from django.db import models


class GovernanceArea(models.Model):
    """Holds the area-wide permissions of the Governance app; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("access_governance", "Can open the Governance area")]

    def __str__(self) -> str:
        return "governance area"
