from django.db import models


class EngagementArea(models.Model):
    """Holds the area-wide permissions of the Engagement app; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("access_engagement", "Can open the Engagement area")]

    def __str__(self) -> str:
        return "engagement area"
