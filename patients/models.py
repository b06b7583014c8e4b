from django.db import models


class PatientsArea(models.Model):
    """Holds the area-wide permissions of the Patients app; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("access_patients", "Can open the Patients area")]

    def __str__(self) -> str:
        return "patients area"
