from django.conf import settings
from django.http import HttpRequest

from core.selectors import area_list


def navigation(request: HttpRequest) -> dict[str, object]:
    context: dict[str, object] = {"session_idle_minutes": settings.SESSION_IDLE_TIMEOUT_MINUTES}
    user = getattr(request, "user", None)
    if user is None:
        context["nav_areas"] = []
        return context
    areas = area_list(user=user)
    context["nav_areas"] = areas
    context["nav_current"] = next((area.key for area in areas if request.path.startswith(area.url)), None)
    return context
