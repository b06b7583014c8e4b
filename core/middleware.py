"""Responses that may carry protected health information are never stored outside the server."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


class NoStoreMiddleware:
    """Every response the application makes (static files are served before this, by WhiteNoise) tells
    browsers and proxies not to keep it (``Cache-Control: no-store``): a patient's page, a search's results or
    a FHIR resource must not stay in a shared computer's disk cache, or be shown again by the Back button
    after the user has logged out. A view that sets its own ``Cache-Control`` keeps it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
