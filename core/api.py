"""Base for REST endpoints: DRF authenticates and answers 401/403 itself, so the login-redirect
middleware steps aside (an API client must never receive an HTML login page)."""

from typing import Any

from django.contrib.auth.decorators import login_not_required
from rest_framework.views import APIView


class ApiView(APIView):
    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return login_not_required(super().as_view(**initkwargs))
