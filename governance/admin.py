from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.errors import ApplicationError
from governance.models import RenormalizationRun, TerminologyMap, UnmappedCode
from governance.services import terminology_map_create, unmapped_code_map, unmapped_codes_ignore


@admin.register(TerminologyMap)
class TerminologyMapAdmin(admin.ModelAdmin):
    list_display = (
        "local_system", "local_code", "alias", "standard_system", "standard_code", "standard_display", "source",
        "origin", "is_active",
    )  # fmt: skip
    list_filter = ("origin", "is_active", "standard_system", "source")
    search_fields = ("local_system", "local_code", "alias", "standard_code", "standard_display")
    readonly_fields = ("origin", "external_id", "created_at", "updated_at")

    def has_change_permission(self, request: HttpRequest, obj: TerminologyMap | None = None) -> bool:
        # A map in use is replaced, not edited: the stored resources it normalized would no longer match it.
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: TerminologyMap, form: Any, change: bool) -> None:
        try:
            saved = terminology_map_create(
                actor=request.user,  # type: ignore[arg-type]
                source=obj.source,
                local_system=obj.local_system,
                local_code=obj.local_code,
                alias=obj.alias,
                standard_system=obj.standard_system,
                standard_code=obj.standard_code,
                standard_display=obj.standard_display,
                note=obj.note,
            )
        except ApplicationError as error:
            messages.error(request, f"{error.message} {error.extra}")
            return
        obj.pk = saved.pk
        messages.info(request, "Saved; the stored resources it affects are being normalized again.")


class UnmappedCodeMapForm(forms.ModelForm):
    """The queue entry with the standard code a steward maps it to."""

    standard_system = forms.CharField(max_length=200, required=False, initial="http://loinc.org")
    standard_code = forms.CharField(max_length=100, required=False)
    standard_display = forms.CharField(max_length=300, required=False)
    every_source = forms.BooleanField(required=False, help_text="Map it for every source, not only this one.")

    class Meta:
        model = UnmappedCode
        fields: list[str] = []


@admin.register(UnmappedCode)
class UnmappedCodeAdmin(admin.ModelAdmin):
    form = UnmappedCodeMapForm
    list_display = ("system", "code", "display", "resource_type", "source", "count", "last_seen_at", "status")
    list_filter = ("status", "resource_type", "source")
    search_fields = ("system", "code", "display", "alias")
    readonly_fields = (
        "source", "resource_type", "system", "code", "alias", "display", "count", "first_seen_at",
        "last_seen_at", "status", "terminology_map",
    )  # fmt: skip
    actions = ["ignore"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: UnmappedCode, form: Any, change: bool) -> None:
        code = form.cleaned_data.get("standard_code")
        if not code:
            return
        try:
            unmapped_code_map(
                actor=request.user,  # type: ignore[arg-type]
                unmapped=obj,
                standard_system=form.cleaned_data["standard_system"],
                standard_code=code,
                standard_display=form.cleaned_data["standard_display"],
                every_source=form.cleaned_data["every_source"],
            )
        except ApplicationError as error:
            messages.error(request, f"{error.message} {error.extra}")

    @admin.action(description="Ignore (no standard code applies)")
    def ignore(self, request: HttpRequest, queryset: QuerySet[UnmappedCode]) -> None:
        unmapped_ids = list(queryset.values_list("pk", flat=True))
        ignored = unmapped_codes_ignore(actor=request.user, unmapped_ids=unmapped_ids)  # type: ignore[arg-type]
        messages.info(request, f"{ignored} ignored.")


@admin.register(RenormalizationRun)
class RenormalizationRunAdmin(admin.ModelAdmin):
    list_display = (
        "terminology_map",
        "status",
        "candidates",
        "examined",
        "updated",
        "started_at",
        "finished_at",
    )
    list_filter = ("status",)
    readonly_fields = [field.name for field in RenormalizationRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
