from django.urls import path

from engagement.views import EngagementLandingView

app_name = "engagement"

urlpatterns = [
    path("", EngagementLandingView.as_view(), name="landing"),
]
