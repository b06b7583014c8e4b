"""Every URL pattern, visited anonymously, redirects to a login page (HTML) or answers 401/403 (API).

The list of URLs is generated from the URL resolver, so a new page is covered the moment it is routed.
"""

import re
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern

# Pages that must answer without a login, each for a stated reason.
PUBLIC = {
    "login": "the login page itself",
    "logout": "logging out asks for nothing and reveals nothing",
    "healthz": "load-balancer liveness; answers 'ok' and nothing else",
    "favicon": "browsers ask for it before anyone signs in",
    "admin:login": "the admin's own login page",
    "admin:logout": "logging out asks for nothing and reveals nothing",
    "fhir-metadata": "the FHIR CapabilityStatement: what the server supports, no data; clients read it first",
}
API_PREFIXES = ("/api/", "/fhir/")
SAMPLE_VALUES = ("1", str(uuid.UUID(int=1)), "auth", "user", "x")
CONVERTER_SAMPLES = {"int": "1", "uuid": str(uuid.UUID(int=1)), "slug": "x", "str": "x", "path": "x"}


def _fill_route(route: str) -> str:
    return re.sub(r"<(?:(\w+):)?\w+>", lambda match: CONVERTER_SAMPLES[match.group(1) or "str"], route)


def _named_groups(regex: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, body) of each top-level ``(?P<name>body)`` group, nesting-aware."""
    index = 0
    while (start := regex.find("(?P<", index)) != -1:
        depth, position = 0, start
        while position < len(regex):
            char = regex[position]
            if char == "\\":
                position += 2
                continue
            depth += char == "("
            depth -= char == ")"
            if depth == 0:
                break
            position += 1
        body = regex[regex.index(">", start) + 1 : position]
        yield start, position + 1, body
        index = position + 1


def _fill_regex(regex: str) -> str:
    regex = regex.removeprefix("^").removesuffix("$").removesuffix(r"\Z")
    pieces, last = [], 0
    for start, end, body in _named_groups(regex):
        sample = next((value for value in SAMPLE_VALUES if re.fullmatch(body, value)), "x")
        pieces.extend([regex[last:start], sample])
        last = end
    pieces.append(regex[last:])
    return re.sub(r"\\(.)", r"\1", "".join(pieces))


def _fill(pattern: RoutePattern | RegexPattern | object) -> str:
    if isinstance(pattern, RoutePattern):
        return _fill_route(str(pattern))
    if isinstance(pattern, RegexPattern):
        return _fill_regex(pattern.regex.pattern)
    return str(pattern)


def _walk(
    patterns: list[URLPattern | URLResolver], prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str]]:
    for entry in patterns:
        path = prefix + _fill(entry.pattern)
        if isinstance(entry, URLResolver):
            inner_namespace = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, path, inner_namespace)
        else:
            yield f"{namespace}{entry.name or entry.lookup_str}", "/" + path


def _all_urls() -> list[tuple[str, str]]:
    urls = []
    for name, path in _walk(get_resolver().url_patterns):
        try:
            resolve(path)
        except Resolver404:
            pytest.fail(f"generated URL {path} for {name} does not resolve; teach the generator its pattern")
        urls.append((name, path))
    return urls


ALL_URLS = _all_urls()


def test_generator_covers_the_known_areas() -> None:
    names = {name for name, _ in ALL_URLS}

    assert {
        "home",
        "patients:landing",
        "governance:landing",
        "engagement:landing",
        "analytics:landing",
    } <= names
    assert "api-me" in names
    assert "admin:index" in names
    assert len(ALL_URLS) > 20  # the admin alone routes dozens of pages


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "path"), [pair for pair in ALL_URLS if pair[0] not in PUBLIC], ids=lambda v: v
)
def test_anonymous_visit_needs_login(client: Client, name: str, path: str) -> None:
    response = client.get(path)

    if path.startswith(API_PREFIXES):
        assert response.status_code in {401, 403}, f"{name} {path} answered {response.status_code}"
        assert response["Content-Type"].startswith(("application/json", "application/fhir+json"))
        return
    assert response.status_code == 302, f"{name} {path} answered {response.status_code}"
    target = urlsplit(response["Location"]).path
    expected = {"/accounts/login/", "/admin/login/"} if path.startswith("/admin/") else {"/accounts/login/"}
    assert target in expected, f"{name} {path} redirected to {response['Location']}"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path"), [pair for pair in ALL_URLS if pair[0] in PUBLIC], ids=lambda v: v)
def test_public_urls_reveal_nothing(client: Client, name: str, path: str) -> None:
    response = client.get(path)

    assert response.status_code in {200, 302, 405}
    assert b"Signed in as" not in response.content
