"""A care coordinator finds a patient despite a typo, and reads the unified page in a real browser.

Screenshots are kept under ``var/test-artifacts/`` (ignored by git) for a person to look at.
"""

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from core.roles import CARE_COORDINATOR
from patients.models import InboundPayload, Patient, Source
from tests.conftest import ROLE_USERNAMES, TEST_PASSWORD
from tests.e2e.conftest import ARTIFACTS
from tests.patients.conftest import as_bytes, land, patient, transaction  # noqa: F401 (land: fixture used by alma)
from tests.patients.test_patient_views import (
    _land_at_the_hospital,
    _weight,
    alma,  # noqa: F401 (the fixture: Alma in three sources)
)

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Reports every Content-Security-Policy violation of every document the page loads to the test.
# Playwright adds this script through the DevTools protocol, which the page's policy does not govern.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


def _watch(page: Page) -> list[str]:
    """Console errors, uncaught exceptions and CSP violations of ``page``, collected as they happen."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.expose_function("reportCspViolation", lambda text: problems.append(f"CSP violation: {text}"))
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    return problems


def _sign_in_as_coordinator(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(ROLE_USERNAMES[CARE_COORDINATOR])
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/patients/")


def test_coordinator_finds_a_misspelled_patient_and_reads_the_page(
    page: Page,
    live_server: object,
    role_users: dict[str, User],
    alma: Patient,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base_url = str(live_server)
    problems = _watch(page)
    _sign_in_as_coordinator(page, base_url)
    page.goto(f"{base_url}/patients/search/")

    page.get_by_label("Name, phone, e-mail or record number").fill("Alma Kwigley")
    results = page.locator("#results table")
    expect(results).to_contain_text("Quigley")  # arrived by htmx while typing
    expect(page.get_by_role("status")).to_have_text("1 patient found")
    page.screenshot(path=str(ARTIFACTS / "patient-search.png"), full_page=True)
    results.get_by_role("link").first.click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Quigley")
    badges = page.locator(".sources-line .source-badge")
    expect(badges).to_have_count(3)
    phone = page.locator('dd[data-field="phone"] details.provenance')
    phone.locator("summary").click()
    # The CRM by its name ("Patient CRM"), or by its slug where the page names no source.
    expect(phone).to_contain_text("From Patient CRM (crm record")
    chart = page.locator('[data-plotly-chart][aria-label="Blood pressure (systolic and diastolic)"]')
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator(".scatterlayer .trace")).not_to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "patient-page.png"), full_page=True)
    assert problems == []


def test_coordinator_moves_through_search_results_with_the_keyboard(
    page: Page,
    live_server: object,
    role_users: dict[str, User],
    alma: Patient,  # noqa: F811
    land: Callable[..., InboundPayload],  # noqa: F811
) -> None:
    hospital = Source.objects.get(slug="hospital-ehr")
    brother = patient("h-3", name=[{"family": "Quigley", "given": ["Bernard"]}], birthDate="1958-09-30")
    brother["telecom"] = [{"system": "phone", "value": "(508) 555-0177"}]
    brother["address"] = [{"line": ["4 Oak road"], "city": "Worcester", "postalCode": "01608"}]
    land(hospital, as_bytes(transaction(brother)))
    base_url = str(live_server)
    problems = _watch(page)
    _sign_in_as_coordinator(page, base_url)
    page.goto(f"{base_url}/patients/search/")
    search_box = page.get_by_label("Name, phone, e-mail or record number")
    status = page.get_by_role("status")

    search_box.press_sequentially("Quigley")
    links = page.locator("#results tbody tr td:first-child a")
    expect(links).to_have_count(2)  # arrived by htmx while typing
    expect(status).to_have_text("2 patients found")
    expect(page.locator("#results")).not_to_have_attribute("aria-live", re.compile(".*"))
    expect(search_box).to_be_focused()  # the results arriving leave the focus where the typing is

    page.keyboard.press("ArrowDown")
    expect(links.nth(0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(links.nth(1)).to_be_focused()
    page.keyboard.press("ArrowDown")  # the last result stays focused
    expect(links.nth(1)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(links.nth(0)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(search_box).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("End")
    expect(links.nth(1)).to_be_focused()
    page.keyboard.press("Escape")
    expect(search_box).to_be_focused()

    search_box.press_sequentially(" Zebediah")  # no one: the new count is announced
    expect(status).to_have_text(re.compile("^No patient you may see matches"))
    search_box.fill("Alma Quigley")
    expect(status).to_have_text("1 patient found")
    page.keyboard.press("ArrowDown")
    page.screenshot(path=str(ARTIFACTS / "patient-search-keyboard.png"), full_page=True)
    first = links.nth(0)
    expect(first).to_be_focused()
    expect(first).to_contain_text("Alma")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(rf"^{re.escape(base_url)}/patients/[0-9a-f-]{{36}}/$"))
    assert page.url == f"{base_url}/patients/{alma.external_id}/"
    expect(page.get_by_role("heading", level=1)).to_contain_text("Quigley")
    assert problems == []


def test_show_all_from_the_keyboard_keeps_the_place(
    page: Page,
    live_server: object,
    role_users: dict[str, User],
    alma: Patient,  # noqa: F811
    land: Callable[..., InboundPayload],  # noqa: F811
) -> None:
    weights = [
        _weight(f"w-{day}", "urn:uuid:h-1", kilograms=70 + day / 10, when=f"2024-01-{day:02d}T08:00:00Z")
        for day in range(1, 26)
    ]
    _land_at_the_hospital(land, *weights)
    base_url = str(live_server)
    problems = _watch(page)
    _sign_in_as_coordinator(page, base_url)
    page.goto(f"{base_url}/patients/{alma.external_id}/")
    vitals = page.locator("#section-vitals")
    expect(vitals.locator("tbody tr")).to_have_count(20)  # the 20 most recent

    vitals.locator("summary").focus()  # a long section starts folded
    page.keyboard.press("Enter")
    show_all = vitals.get_by_role("button", name=re.compile("^Show all"))
    show_all.focus()
    page.keyboard.press("Enter")

    expect(page.locator("#section-vitals tbody tr")).to_have_count(28)  # 25 weights and Alma's 3 readings
    # The button went with the section it replaced: the focus is on the new section's heading.
    expect(page.locator("#vitals-heading")).to_be_focused()
    assert problems == []
