from typing import Any

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.views.generic import TemplateView

from analytics.charts import staff_by_role_figure


class AnalyticsLandingView(PermissionRequiredMixin, TemplateView):
    permission_required = "analytics.access_analytics"
    template_name = "analytics/landing.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["staff_figure"] = staff_by_role_figure()
        return context
