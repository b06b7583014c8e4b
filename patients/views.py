from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from patients.ingest.processing import payload_replay
from patients.models import InboundPayload, Source
from patients.selectors import payload_list, source_status_list

PAYLOADS_PER_PAGE = 50


class PatientsLandingView(PermissionRequiredMixin, TemplateView):
    permission_required = "patients.access_patients"
    template_name = "patients/landing.html"


class SourceListView(PermissionRequiredMixin, TemplateView):
    permission_required = "patients.view_source"
    template_name = "patients/source_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "statuses": source_status_list()}


class PayloadListView(PermissionRequiredMixin, TemplateView):
    permission_required = "patients.view_inboundpayload"
    template_name = "patients/payload_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        source = get_object_or_404(Source, slug=self.kwargs["slug"])
        status = self.request.GET.get("status", "")
        if status not in InboundPayload.Status.values:
            status = ""
        page = Paginator(payload_list(source=source, status=status), PAYLOADS_PER_PAGE).get_page(
            self.request.GET.get("page")
        )
        return {
            **super().get_context_data(**kwargs),
            "source": source,
            "status": status,
            "statuses": InboundPayload.Status.choices,
            "page": page,
        }


class PayloadDetailView(PermissionRequiredMixin, TemplateView):
    permission_required = "patients.view_inboundpayload"
    template_name = "patients/payload_detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        payload = get_object_or_404(payload_list(), external_id=self.kwargs["external_id"])
        return {**super().get_context_data(**kwargs), "payload": payload}


class PayloadReplayView(PermissionRequiredMixin, View):
    permission_required = "patients.replay_payload"

    def post(self, request: HttpRequest, external_id: str) -> HttpResponse:
        payload = get_object_or_404(InboundPayload.objects.defer("body"), external_id=external_id)
        if payload.status != InboundPayload.Status.QUARANTINED:
            messages.info(request, "Only quarantined payloads are replayed.")
        else:
            replayed = payload_replay(actor=request.user, payload=payload)  # type: ignore[arg-type]
            replayed.refresh_from_db(fields=["status", "error"])
            if replayed.status == InboundPayload.Status.ACCEPTED:
                messages.success(request, "Replayed: the payload was accepted.")
            elif replayed.status == InboundPayload.Status.RECEIVED:
                messages.info(request, "Replay queued: a worker will process the payload.")
            else:
                messages.error(request, f"Replayed, still quarantined: {replayed.error}")
        return HttpResponseRedirect(reverse("patients:payload-detail", args=[payload.external_id]))
