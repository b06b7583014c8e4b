"""Reads of governance data."""

from django.db.models import Count, Max, QuerySet

from governance.models import RenormalizationRun, TerminologyMap, UnmappedCode
from governance.policies.terminology import MapEntry


def terminology_map_entries() -> list[MapEntry]:
    """Every active map as the pure policy's entries (the source as its slug, "" for every source)."""
    rows = TerminologyMap.objects.filter(is_active=True).values_list(
        "source__slug",
        "local_system",
        "local_code",
        "alias",
        "standard_system",
        "standard_code",
        "standard_display",
    )
    return [
        MapEntry(
            source_slug=slug or "",
            local_system=local_system,
            local_code=local_code,
            alias=alias,
            standard_system=standard_system,
            standard_code=standard_code,
            standard_display=standard_display,
        )
        for slug, local_system, local_code, alias, standard_system, standard_code, standard_display in rows
    ]


def terminology_maps_version() -> str:
    """Changes whenever a map is added, changed or removed: one aggregate query."""
    found = TerminologyMap.objects.aggregate(count=Count("id"), latest=Max("updated_at"))
    latest = found["latest"].isoformat() if found["latest"] else ""
    return f"{found['count']}:{latest}"


def unmapped_code_list(*, status: str = UnmappedCode.Status.OPEN) -> QuerySet[UnmappedCode]:
    return UnmappedCode.objects.filter(status=status).select_related("source").order_by("-count")


def renormalization_run_get(*, run_id: int) -> RenormalizationRun:
    return RenormalizationRun.objects.select_related("terminology_map", "terminology_map__source").get(
        pk=run_id
    )
