"""Staff roles: Django groups with permission sets, and the areas each role navigates to.

The permission codenames are declared by each app (``Meta.permissions``); this table only assigns them.
"""

from dataclasses import dataclass

from django.urls import reverse


@dataclass(frozen=True)
class Area:
    key: str
    label: str
    url_name: str
    permission: str | None  # None: staff flag required (the Django admin)

    @property
    def url(self) -> str:
        return reverse(self.url_name)


AREAS: tuple[Area, ...] = (
    Area("patients", "Patients", "patients:landing", "patients.access_patients"),
    Area("governance", "Governance", "governance:landing", "governance.access_governance"),
    Area("engagement", "Engagement", "engagement:landing", "engagement.access_engagement"),
    Area("analytics", "Analytics", "analytics:landing", "analytics.access_analytics"),
    Area("admin", "Admin", "admin:index", None),
)


@dataclass(frozen=True)
class Role:
    name: str
    permissions: tuple[str, ...]
    home_area: str
    is_staff: bool = False


CARE_COORDINATOR = "Care coordinator"
DATA_STEWARD = "Data steward"
EXECUTIVE = "Executive"
ADMINISTRATOR = "Administrator"

ROLES: tuple[Role, ...] = (
    Role(
        CARE_COORDINATOR,
        (
            "patients.access_patients",
            "engagement.access_engagement",
            "patients.view_patient",
            "patients.match_patient",
        ),
        "patients",
    ),
    Role(
        DATA_STEWARD,
        (
            "patients.access_patients",
            "governance.access_governance",
            "patients.view_source",
            "patients.view_inboundpayload",
            "patients.replay_payload",
            "patients.view_patient",
            "patients.match_patient",
            "patients.decide_match",
            "patients.merge_patient",
            "patients.view_patientlink",
            "patients.view_matchreview",
            "patients.view_patientmerge",
            "patients.view_patientconflict",
            "patients.view_matchmodel",
            "governance.view_terminologymap",
            "governance.add_terminologymap",
            "governance.change_terminologymap",
            "governance.view_unmappedcode",
            "governance.view_renormalizationrun",
        ),
        "governance",
        # Until the governance screens exist, stewards work the review and terminology queues in the admin.
        is_staff=True,
    ),
    Role(EXECUTIVE, ("analytics.access_analytics",), "analytics"),
    Role(
        ADMINISTRATOR,
        (
            "patients.access_patients",
            "governance.access_governance",
            "engagement.access_engagement",
            "analytics.access_analytics",
            "patients.view_source",
            "patients.add_source",
            "patients.change_source",
            "patients.view_inboundpayload",
            "patients.replay_payload",
            "patients.view_patient",
            "patients.match_patient",
            "patients.decide_match",
            "patients.merge_patient",
            "patients.view_patientlink",
            "patients.view_matchreview",
            "patients.view_patientmerge",
            "patients.view_patientconflict",
            "patients.view_matchmodel",
            "governance.view_terminologymap",
            "governance.add_terminologymap",
            "governance.change_terminologymap",
            "governance.view_unmappedcode",
            "governance.view_renormalizationrun",
            "core.view_accessevent",
            "core.view_apitoken",
            "core.change_apitoken",
            "auth.view_user",
            "auth.add_user",
            "auth.change_user",
            "auth.view_group",
            "auth.change_group",
        ),
        "admin",
        is_staff=True,
    ),
)

ROLE_BY_NAME = {role.name: role for role in ROLES}
