"""Aggregates for executive dashboards. Counts only, never a person's data."""

from django.contrib.auth.models import Group
from django.db.models import Count, Q


def staff_count_by_role() -> list[tuple[str, int]]:
    rows = Group.objects.annotate(active=Count("user", filter=Q(user__is_active=True))).order_by("name")
    return [(group.name, group.active) for group in rows]
