from django.contrib.auth.mixins import PermissionRequiredMixin
from django.views.generic import TemplateView


class PatientsLandingView(PermissionRequiredMixin, TemplateView):
    permission_required = "patients.access_patients"
    template_name = "patients/landing.html"
