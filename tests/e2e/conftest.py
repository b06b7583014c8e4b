"""Playwright against Debian's Chromium (Playwright's own browser download is not used).

Screenshots are test artifacts, kept under ``var/test-artifacts/`` (ignored by git) for a person to look
at: the named ones a test takes on its way, and one of the ``page`` fixture's page as each test ends,
passed or failed, in ``var/test-artifacts/e2e/<test name>.png``.
"""

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import CHROMIUM

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
END_SCREENSHOTS = ARTIFACTS / "e2e"
SCREENSHOT_TIMEOUT_MS = 10_000

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop on this thread; Django's ORM calls made by fixtures
    # here are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a context of its own, photographed as the test ends whatever its outcome."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    yield page
    _end_screenshot(page, request.node)
    context.close()


def _end_screenshot(page: Page, item: pytest.Item) -> None:
    # A screenshot that cannot be taken (the page crashed, the browser is gone) is reported, never turned
    # into a failure or an error of the test.
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", item.name).strip("-")
    path = END_SCREENSHOTS / f"{name}.png"
    try:
        END_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if page.is_closed():
            raise RuntimeError("the test closed its page")
        page.screenshot(path=str(path), full_page=True, timeout=SCREENSHOT_TIMEOUT_MS)
    except Exception as error:
        print(f"no end-of-test screenshot for {item.nodeid}: {error}", file=sys.stderr)
    else:
        print(f"end-of-test screenshot: {path}")
