from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from core.views import HomeView, MeApi, healthz

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path(
        "favicon.ico", login_not_required(RedirectView.as_view(url=static("img/favicon.svg"))), name="favicon"
    ),
    path("patients/", include("patients.urls")),
    path("governance/", include("governance.urls")),
    path("engagement/", include("engagement.urls")),
    path("analytics/", include("analytics.urls")),
    path("api/v1/me/", MeApi.as_view(), name="api-me"),
    path("fhir/", include("patients.api.urls")),
    path("admin/", admin.site.urls),
]

admin.site.site_header = "Concord administration"
admin.site.site_title = "Concord admin"
