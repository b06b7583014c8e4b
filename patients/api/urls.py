from django.urls import path

from core.api import by_method
from patients.api.fhir_parameters import SEARCHABLE_TYPES
from patients.api.fhir_patient import PatientMatchApi, PatientReadApi
from patients.api.fhir_push import FhirPushApi
from patients.api.fhir_read import (
    MetadataApi,
    PatientEverythingApi,
    PatientSearchApi,
    ResourceSearchApi,
    UnroutedRequestApi,
)

push = FhirPushApi.as_view()
unrouted = UnroutedRequestApi.as_view()

urlpatterns = [
    path("", push, name="fhir-push-bundle"),
    path("metadata", MetadataApi.as_view(), name="fhir-metadata"),
    path("Patient/$match", PatientMatchApi.as_view(), name="fhir-patient-match"),
    path("Patient/<uuid:external_id>", PatientReadApi.as_view(), name="fhir-patient-read"),
    path(
        "Patient/<uuid:external_id>/$everything",
        PatientEverythingApi.as_view(),
        name="fhir-patient-everything",
    ),
    # GET searches, POST stays the source push: before the catch-all push route below.
    path(
        "Patient",
        by_method(get=PatientSearchApi.as_view(), other=push),
        {"resource_type": "Patient"},
        name="fhir-patient-search",
    ),
    *(
        path(
            resource_type,
            by_method(get=ResourceSearchApi.as_view(), other=push),
            {"resource_type": resource_type},
            name=f"fhir-{resource_type.lower()}-search",
        )
        for resource_type in SEARCHABLE_TYPES
    ),
    # A GET of any other type (Procedure) is no read this API offers: an OperationOutcome, not a push 401.
    path("<str:resource_type>", by_method(get=unrouted, other=push), name="fhir-push-resource"),
    # Last: whatever no route above took (Patient/not-a-uuid, Observation/<id>) answers FHIR, not HTML.
    path("<path:unmatched>", unrouted, name="fhir-unrouted"),
]
