from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from patients.models import InboundPayload, Source
from patients.services import source_token_issue


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "department", "jurisdiction", "api_token_prefix", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "slug", "department")
    readonly_fields = ("api_token_prefix", "external_id", "created_at", "updated_at")
    actions = ["issue_token"]

    @admin.action(description="Issue a new API token (shown once)")
    def issue_token(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            token = source_token_issue(actor=request.user, source=source)  # type: ignore[arg-type]
            messages.warning(
                request, f"New token for {source.slug} (copy it now, it is not shown again): {token}"
            )


@admin.register(InboundPayload)
class InboundPayloadAdmin(admin.ModelAdmin):
    """Payload metadata only: bodies hold PHI and are never shown or changed here."""

    list_display = ("received_at", "source", "channel", "format", "size", "status", "error")
    list_filter = ("status", "format", "channel", "source")
    exclude = ("body",)
    readonly_fields = [field.name for field in InboundPayload._meta.fields if field.name != "body"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundPayload]:
        return super().get_queryset(request).defer("body").select_related("source")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
