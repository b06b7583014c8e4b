from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.models import AccessEvent, ApiToken
from core.services import api_token_revoke


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


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: listed and revoked here; issued by ``manage.py api_token`` (the only place one is shown)."""

    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    fields = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Revoke the selected API tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        actor = request.user if request.user.is_authenticated else None
        revoked = 0
        for api_token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(actor=actor, api_token=api_token)
            revoked += 1
        self.message_user(request, f"{revoked} API token(s) revoked.", messages.SUCCESS)
