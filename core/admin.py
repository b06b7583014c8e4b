from django.contrib import admin
from django.http import HttpRequest

from core.models import AccessEvent


@admin.register(AccessEvent)
class AccessEventAdmin(admin.ModelAdmin):
    """PHI access audit: read-only; rows are never edited or deleted."""

    list_display = (
        "occurred_at",
        "actor_username",
        "action",
        "channel",
        "patient_ref",
        "object_type",
        "purpose",
    )
    list_filter = ("action", "channel")
    search_fields = ("actor_username", "patient_ref", "object_ref", "purpose")
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
