from django.urls import path

from patients.views import PatientsLandingView

app_name = "patients"

urlpatterns = [
    path("", PatientsLandingView.as_view(), name="landing"),
]
