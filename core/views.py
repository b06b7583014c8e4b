from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views import View
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import ApiView
from core.selectors import area_list, home_area_get


class HomeView(LoginRequiredMixin, View):
    """After login: the user's role home, or a page explaining that no role is assigned yet."""

    def get(self, request: HttpRequest) -> HttpResponse:
        area = home_area_get(user=request.user)
        if area is not None:
            return HttpResponseRedirect(area.url)
        return render(request, "core/no_role.html", status=403)


@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: says nothing about data, needs no login."""
    return HttpResponse("ok", content_type="text/plain")


class MeApi(ApiView):
    """The signed-in staff member: username, roles, and the areas they may open."""

    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "username": user.get_username(),
                "roles": sorted(user.groups.values_list("name", flat=True)),
                "areas": [area.key for area in area_list(user=user)],
            }
        )
