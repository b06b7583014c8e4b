import html
import uuid
from collections.abc import Sequence
from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.dateparse import parse_date
from django.utils.safestring import SafeString, mark_safe
from django.views import View
from django.views.generic import TemplateView

from core.audit import phi_access_context, phi_access_record
from core.models import AccessEvent
from patients.chart import PatientChart, patient_chart_get, patient_links_get
from patients.figures import blood_pressure_figure, series_figure, weight_figure
from patients.ingest.extract import fhir_datetime
from patients.ingest.processing import payload_replay
from patients.models import InboundPayload, Patient, Source
from patients.page_cache import record_cached, record_html_get
from patients.selectors import (
    PatientSearchHit,
    golden_patient_get,
    golden_patient_search,
    payload_list,
    source_status_list,
)

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
        payload = get_object_or_404(InboundPayload.objects, external_id=external_id)
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


_PLACEHOLDER_ID = uuid.UUID(int=0)


def _result_rows(hits: Sequence[PatientSearchHit]) -> SafeString:
    """The rows of the results table, every value escaped.

    Written here, not in the template: the list is re-rendered on every key the user types, and Django's
    template engine took 6.6 ms for 25 rows (a ``{% url %}``, a date filter and a dozen lookups each)
    against 0.2 ms this way. ``tests/patients/test_patient_views.py`` checks the escaping.
    """
    link_head, _, link_tail = reverse("patients:patient-detail", args=[_PLACEHOLDER_ID]).partition(
        str(_PLACEHOLDER_ID)
    )
    escape = html.escape
    link_head, link_tail = escape(link_head), escape(link_tail)
    rows = []
    for hit in hits:
        patient = hit.patient
        badges = "".join(f'<span class="source-badge">{escape(str(slug))}</span> ' for slug in hit.sources)
        born = patient.birth_date.isoformat() if patient.birth_date else "unknown"
        rows.append(
            f'<tr><td><a href="{link_head}{patient.external_id}{link_tail}">'
            f"{escape(patient.given_names or '')} {escape(patient.family_name or '')}</a></td>"
            f"<td>{born}</td><td>{escape(patient.gender or 'unknown')}</td><td>{escape(patient.city or '')}</td>"
            f"<td>{badges}</td></tr>\n"
        )
    return mark_safe("".join(rows))  # noqa: S308 (every value above is escaped)


class PatientSearchView(PermissionRequiredMixin, TemplateView):
    """Search by name (typos, phonetic variants, nicknames), birth date, identifier, phone or e-mail.

    With htmx the results table alone is returned, so the list follows the typing.
    """

    permission_required = "patients.access_patients"
    template_name = "patients/patient_search.html"

    def render_to_response(self, context: dict[str, Any], **response_kwargs: Any) -> HttpResponse:
        headers = self.request.headers
        # htmx restoring a page for the Back button asks for the whole page (the header comes with HX-Request).
        if not headers.get("HX-Request") or headers.get("HX-History-Restore-Request"):
            response: HttpResponse = super().render_to_response(context, **response_kwargs)
        else:
            # The results alone, re-rendered on every key typed: nothing the context processors add (the
            # navigation, the CSP nonce) is in them, so they are rendered without running them.
            response = HttpResponse(get_template("patients/patient_search.html#results").render(context))
        patch_vary_headers(response, ("HX-Request", "HX-History-Restore-Request"))
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        query = self.request.GET.get("q", "").strip()[:200]
        birth_date_text = self.request.GET.get("birth_date", "").strip()
        birth_date = parse_date(birth_date_text) if birth_date_text else None
        searched = bool(query or birth_date)
        # Every patient listed is recorded as read, by the statement that reads what the row shows.
        record = phi_access_context(
            purpose="patient search", request=self.request, action=AccessEvent.Action.SEARCH
        )
        hits = (
            golden_patient_search(user=self.request.user, query=query, birth_date=birth_date, record=record)
            if searched
            else []
        )
        return {
            **super().get_context_data(**kwargs),
            "query": query,
            "birth_date": birth_date_text,
            "birth_date_invalid": bool(birth_date_text) and birth_date is None,
            "searched": searched,
            "hits": hits,
            "rows": _result_rows(hits),
        }


class PatientDetailView(PermissionRequiredMixin, TemplateView):
    permission_required = "patients.access_patients"
    template_name = "patients/patient_detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        patient = golden_patient_get(user=self.request.user, external_id=self.kwargs["external_id"])
        if patient is None:
            raise Http404("No such patient.")
        if str(patient.external_id) != str(self.kwargs["external_id"]):
            self.merged_into = patient  # rendered with a notice: the id asked for was merged away
        phi_access_record(purpose="patient page", request=self.request, patient_ref=patient.external_id)
        return {
            **super().get_context_data(**kwargs),
            "patient": patient,
            "record_html": record_html_get(patient, lambda: _record_render(patient)),
            "merged_from_id": self.kwargs["external_id"] if hasattr(self, "merged_into") else None,
        }


def _record_render(patient: Patient) -> str:
    """What the page shows of the record, for ``patients.page_cache``: name, source badges, demographics
    with provenance and conflicts, identifiers and contact points, then trends and every clinical section."""
    links = patient_links_get(patient)
    chart = patient_chart_get(patient, links=links)
    summary = render_to_string(
        "patients/patient_detail.html#summary",
        {
            "links": links,
            "record": patient.record,
            "demographics": _demographic_rows(
                patient, {link.source_patient.source.slug: link.source_patient.source.name for link in links}
            ),
        },
    )
    return summary + render_to_string(
        "patients/patient_detail.html#clinical",
        {
            "patient": patient,
            "chart": chart,
            "blood_pressure": blood_pressure_figure(chart.series),
            "weight": weight_figure(chart.series),
            "preview": SECTION_PREVIEW,
            "preview_slice": f":{SECTION_PREVIEW}",
        },
    )


# The patient page lists this many facts a section (the most recent); "Show all" fetches the rest.
SECTION_PREVIEW = 20
# Sections that can be fetched whole: title, and whether they show an encounter class or a value.
FACT_SECTIONS = {
    "encounters": ("Encounters", True, False),
    "problems": ("Problems", False, False),
    "allergies": ("Allergies", False, False),
    "immunizations": ("Immunizations", False, False),
    "procedures": ("Procedures", False, False),
    "labs": ("Lab results", False, True),
    "vitals": ("Vital signs", False, True),
    "documents": ("Documents and notes", False, False),
}


class PatientSectionView(PermissionRequiredMixin, TemplateView):
    """One clinical section of the patient page with every fact (an htmx fragment: "Show all")."""

    permission_required = "patients.access_patients"
    template_name = "patients/fact_section.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        key = self.kwargs["section"]
        if key not in FACT_SECTIONS:
            raise Http404("No such section.")
        patient = golden_patient_get(user=self.request.user, external_id=self.kwargs["external_id"])
        if patient is None:
            raise Http404("No such patient.")
        phi_access_record(
            purpose=f"patient page: all {key}", request=self.request, patient_ref=patient.external_id
        )
        title, show_class, show_value = FACT_SECTIONS[key]
        return {
            **super().get_context_data(**kwargs),
            "patient": patient,
            "key": key,
            "title": title,
            "show_class": show_class,
            "show_value": show_value,
            "facts": getattr(_chart(patient), key),
            "full": True,
            "preview_slice": ":",
        }


class PatientLabChartView(PermissionRequiredMixin, TemplateView):
    """The trend of one lab the user picked (an htmx fragment of the patient page)."""

    permission_required = "patients.access_patients"
    template_name = "patients/patient_detail.html#lab-chart"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        patient = golden_patient_get(user=self.request.user, external_id=self.kwargs["external_id"])
        if patient is None:
            raise Http404("No such patient.")
        phi_access_record(purpose="patient lab chart", request=self.request, patient_ref=patient.external_id)
        chart = _chart(patient)
        code = self.request.GET.get("code", "")
        names = dict(chart.lab_codes)
        figure = (
            series_figure(chart.series, codes={code: names[code]}, unit=_lab_unit(chart, code))
            if code in names
            else None
        )
        return {**super().get_context_data(**kwargs), "lab_figure": figure, "lab_name": names.get(code, "")}


def _chart(patient: Patient) -> PatientChart:
    """The record's chart for "Show all" and the lab picker: built once per version of the record (50-100 ms
    for 2,000 resources; a few ms to take from the page cache)."""
    return record_cached(patient, "chart", lambda: patient_chart_get(patient))


def _lab_unit(chart: PatientChart, code: str) -> str:
    return next(
        (fact.value.partition(" ")[2] for fact in chart.labs if fact.code == code and " " in fact.value), ""
    )


_DEMOGRAPHIC_LABELS = (
    ("name", "Name"),
    ("birth_date", "Birth date"),
    ("gender", "Sex"),
    ("phone", "Phone"),
    ("email", "E-mail"),
    ("address", "Address"),
    ("preferred_language", "Preferred language"),
    ("deceased", "Deceased"),
)


def _field_text(field: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if field == "name":
        return " ".join(
            [
                *value.get("prefix", []),
                *value.get("given", []),
                value.get("family", ""),
                *value.get("suffix", []),
            ]
        ).strip()
    if field in {"phone", "email"}:
        return f"{value.get('value', '')}" + (f" ({value['use']})" if value.get("use") else "")
    if field == "address":
        parts = [
            *value.get("line", []),
            value.get("city", ""),
            value.get("state", ""),
            value.get("postalCode", ""),
        ]
        return ", ".join(part for part in parts if part)
    if field == "deceased":
        if isinstance(value, bool):
            return "yes" if value else "no"
        # deceasedDateTime: a date alone (or a year, a month) as sent, a time in the site's time zone.
        died = fhir_datetime(value)
        if died is None:
            return str(value)
        shown = timezone.localtime(died).strftime("%Y-%m-%d %H:%M") if len(str(value)) > 10 else str(value)
        return f"yes, on {shown}"
    return str(value)


def _demographic_rows(patient: Patient, source_names: dict[str, str]) -> list[dict[str, Any]]:
    """Each golden value with its provenance (its source named: ``source_names`` by slug) and any open
    conflict, for the page."""
    conflicts = {conflict.field: conflict for conflict in patient.conflicts.filter(status="open")}
    rows = []
    for field, label in _DEMOGRAPHIC_LABELS:
        value = patient.record.get(field)
        if value is None and field != "deceased":
            value = ""
        provenance = patient.provenance.get(field)
        if provenance:
            provenance = {**provenance, "source_name": source_names.get(provenance.get("source", ""), "")}
        conflict = conflicts.get(field)
        rows.append(
            {
                "field": field,
                "label": label,
                "text": _field_text(field, value),
                "provenance": provenance,
                "conflict": [
                    {**item, "text": _field_text(field, item.get("value"))}
                    for item in (conflict.values if conflict else [])
                ],
            }
        )
    return rows
