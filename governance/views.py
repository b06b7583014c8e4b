from django.contrib.auth.mixins import PermissionRequiredMixin
from django.views.generic import TemplateView


class GovernanceLandingView(PermissionRequiredMixin, TemplateView):
    permission_required = "governance.access_governance"
    template_name = "governance/landing.html"
