from django.contrib.auth.mixins import PermissionRequiredMixin
from django.views.generic import TemplateView


class EngagementLandingView(PermissionRequiredMixin, TemplateView):
    permission_required = "engagement.access_engagement"
    template_name = "engagement/landing.html"
