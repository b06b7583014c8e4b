import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse

from core.audit import phi_access_record
from core.errors import ApplicationError
from patients.matching.services import match_review_decide, patient_unmerge
from patients.models import (
    InboundPayload,
    MatchModel,
    MatchReview,
    Patient,
    PatientConflict,
    PatientLink,
    PatientMerge,
    Source,
)
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
        return super().get_queryset(request).select_related("source")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Patient index rows change only through services (matching, steward decisions, merges)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class PatientLinkInline(admin.TabularInline):
    model = PatientLink
    fk_name = "patient"
    fields = ("source_record", "state", "origin", "score", "reason", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Source record")
    def source_record(self, link: PatientLink) -> str:
        return str(link.source_patient)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(ReadOnlyAdmin):
    """Golden patients by id, sources and state; demographics are shown only on the audited detail page."""

    list_display = ("external_id", "is_active", "merged_into", "record_count", "computed_at")
    list_filter = ("is_active",)
    search_fields = ("=external_id",)
    fields = ("external_id", "is_active", "merged_into", "record", "provenance", "computed_at")
    readonly_fields = fields
    inlines = [PatientLinkInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Patient]:
        return super().get_queryset(request).annotate(records=Count("links")).select_related("merged_into")

    @admin.display(description="Records", ordering="records")
    def record_count(self, patient: Patient) -> int:
        return getattr(patient, "records", 0)

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        patient = self.get_object(request, object_id)
        if patient is not None:
            phi_access_record(
                purpose="admin: golden patient", request=request, patient_ref=patient.external_id
            )
        return super().change_view(request, object_id, *args, **kwargs)


@admin.register(PatientLink)
class PatientLinkAdmin(ReadOnlyAdmin):
    list_display = ("source_patient", "patient", "state", "origin", "score", "updated_at")
    list_filter = ("state", "origin", "source_patient__source")
    search_fields = ("=source_patient__source_record_id", "=patient__external_id")
    list_select_related = ("source_patient__source", "patient")


@admin.register(MatchReview)
class MatchReviewAdmin(ReadOnlyAdmin):
    """The possible-match and possible-duplicate queue; decisions go through the steward actions."""

    list_display = (
        "created_at",
        "kind",
        "status",
        "score",
        "reason",
        "source_patient",
        "patient",
        "other_patient",
    )
    list_filter = ("status", "kind")
    list_select_related = ("source_patient__source", "patient", "other_patient")
    fields = (
        "kind",
        "status",
        "score",
        "match_weight",
        "reason",
        "source_patient",
        "patient",
        "other_patient",
        "comparisons",
        "record_demographics",
        "candidate_demographics",
        "decided_by",
        "decided_at",
    )
    readonly_fields = fields
    actions = ["confirm_same_person", "reject_different_people"]

    @admin.display(description="Record (as its source has it)")
    def record_demographics(self, review: MatchReview) -> str:
        record = review.source_patient
        return _demographics(record.resource) if record else "-"

    @admin.display(description="Candidate patient (golden record)")
    def candidate_demographics(self, review: MatchReview) -> str:
        return json.dumps(
            {
                key: review.patient.record.get(key)
                for key in ("name", "birth_date", "gender", "phone", "address")
            },
            ensure_ascii=False,
        )

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        review = self.get_object(request, object_id)
        if review is not None:
            phi_access_record(
                purpose="admin: match review", request=request, patient_ref=review.patient.external_id
            )
        return super().change_view(request, object_id, *args, **kwargs)

    def _decide(self, request: HttpRequest, queryset: QuerySet[MatchReview], *, same_person: bool) -> None:
        if not request.user.has_perm("patients.decide_match"):
            messages.error(request, "Deciding matches needs the 'decide possible matches' permission.")
            return
        decided = 0
        for review in queryset.filter(status=MatchReview.Status.OPEN):
            try:
                match_review_decide(actor=request.user, review=review, same_person=same_person)  # type: ignore[arg-type]
                decided += 1
            except ApplicationError as error:
                messages.error(request, f"{review}: {error}")
        messages.success(request, f"{decided} review(s) decided.")

    @admin.action(description="Same person: link the record to the candidate (manual)")
    def confirm_same_person(self, request: HttpRequest, queryset: QuerySet[MatchReview]) -> None:
        self._decide(request, queryset, same_person=True)

    @admin.action(description="Different people: keep them apart (manual)")
    def reject_different_people(self, request: HttpRequest, queryset: QuerySet[MatchReview]) -> None:
        self._decide(request, queryset, same_person=False)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Actions need change permission in the admin; the decision itself checks decide_match.
        return request.user.has_perm("patients.decide_match")


def _demographics(resource: dict[str, Any]) -> str:
    keys = ("name", "birthDate", "gender", "telecom", "address", "identifier")
    return json.dumps({key: resource.get(key) for key in keys if resource.get(key)}, ensure_ascii=False)


@admin.register(PatientMerge)
class PatientMergeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "survivor", "duplicate", "reason", "actor", "unmerged_at")
    list_select_related = ("survivor", "duplicate", "actor")
    actions = ["unmerge"]

    @admin.action(description="Unmerge: restore exactly the links the merge moved")
    def unmerge(self, request: HttpRequest, queryset: QuerySet[PatientMerge]) -> None:
        if not request.user.has_perm("patients.merge_patient"):
            messages.error(request, "Unmerging needs the 'merge and unmerge' permission.")
            return
        for merge in queryset:
            try:
                patient_unmerge(actor=request.user, merge=merge, reason="unmerged in the admin")  # type: ignore[arg-type]
                messages.success(request, f"{merge}: undone")
            except ApplicationError as error:
                messages.error(request, f"{merge}: {error}")

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("patients.merge_patient")


@admin.register(PatientConflict)
class PatientConflictAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "patient", "field", "status", "resolved_at")
    list_filter = ("status", "field")
    list_select_related = ("patient",)


@admin.register(MatchModel)
class MatchModelAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "created_at",
        "is_active",
        "record_count",
        "auto_match_probability",
        "review_probability",
    )
