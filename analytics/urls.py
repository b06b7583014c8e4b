from django.urls import path

from analytics.views import AnalyticsLandingView

app_name = "analytics"

urlpatterns = [
    path("", AnalyticsLandingView.as_view(), name="landing"),
]
