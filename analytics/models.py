from django.db import models


class AnalyticsArea(models.Model):
    """Holds the area-wide permissions of the Analytics app; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("access_analytics", "Can open the Analytics area")]

    def __str__(self) -> str:
        return "analytics area"
