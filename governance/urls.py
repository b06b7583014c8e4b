from django.urls import path

from governance.views import GovernanceLandingView

app_name = "governance"

urlpatterns = [
    path("", GovernanceLandingView.as_view(), name="landing"),
]
