"""Base for REST endpoints: DRF authenticates and answers 401/403 itself, so the login-redirect
middleware steps aside (an API client must never receive an HTML login page)."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.views import APIView

from core.models import ApiToken
from core.selectors import api_token_get
from core.services import api_token_use_record


class ApiView(APIView):
    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return login_not_required(super().as_view(**initkwargs))


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <API token>`` acting as the token's user (``manage.py api_token``).

    No header means "not this scheme" (session authentication may still apply); a bearer token that is
    not valid is refused outright. Messages never repeat the token.
    """

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <API token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise exceptions.AuthenticationFailed("The API token is not valid.") from error
        api_token = api_token_get(token=token)
        if api_token is None:
            raise exceptions.AuthenticationFailed("The API token is not valid, or it was revoked.")
        api_token_use_record(api_token=api_token)
        return api_token.user, api_token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="concord"'


def by_method(
    *, get: Callable[..., HttpResponse], other: Callable[..., HttpResponse]
) -> Callable[..., HttpResponse]:
    """One URL, two API views: ``get`` answers GET and HEAD, ``other`` every other method.

    For REST URLs where reading and writing are different operations with different callers (a FHIR
    type's search and its push). Each view still authenticates and checks CSRF as it always does.
    """

    @login_not_required
    @csrf_exempt
    def endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        view = get if request.method in ("GET", "HEAD") else other
        return view(request, *args, **kwargs)

    return endpoint
