from django.urls import path

from patients.views import (
    PatientDetailView,
    PatientLabChartView,
    PatientSearchView,
    PatientSectionView,
    PatientsLandingView,
    PayloadDetailView,
    PayloadListView,
    PayloadReplayView,
    SourceListView,
)

app_name = "patients"

urlpatterns = [
    path("", PatientsLandingView.as_view(), name="landing"),
    path("search/", PatientSearchView.as_view(), name="patient-search"),
    path("<uuid:external_id>/", PatientDetailView.as_view(), name="patient-detail"),
    path("<uuid:external_id>/lab-chart/", PatientLabChartView.as_view(), name="patient-lab-chart"),
    path("<uuid:external_id>/sections/<slug:section>/", PatientSectionView.as_view(), name="patient-section"),
    path("sources/", SourceListView.as_view(), name="source-list"),
    path("sources/<slug:slug>/payloads/", PayloadListView.as_view(), name="payload-list"),
    path("payloads/<uuid:external_id>/", PayloadDetailView.as_view(), name="payload-detail"),
    path("payloads/<uuid:external_id>/replay/", PayloadReplayView.as_view(), name="payload-replay"),
]
