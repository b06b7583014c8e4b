from django.urls import path

from patients.api.fhir_patient import PatientMatchApi, PatientReadApi
from patients.api.fhir_push import FhirPushApi

urlpatterns = [
    path("", FhirPushApi.as_view(), name="fhir-push-bundle"),
    path("Patient/$match", PatientMatchApi.as_view(), name="fhir-patient-match"),
    path("Patient/<uuid:external_id>", PatientReadApi.as_view(), name="fhir-patient-read"),
    path("<str:resource_type>", FhirPushApi.as_view(), name="fhir-push-resource"),
]
