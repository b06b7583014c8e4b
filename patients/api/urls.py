from django.urls import path

from patients.api.fhir_push import FhirPushApi

urlpatterns = [
    path("", FhirPushApi.as_view(), name="fhir-push-bundle"),
    path("<str:resource_type>", FhirPushApi.as_view(), name="fhir-push-resource"),
]
