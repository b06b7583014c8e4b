"""A care coordinator finds a patient despite a typo, and reads the unified page in a real browser.

Screenshots are kept under ``var/test-artifacts/`` (ignored by git) for a person to look at.
"""

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, expect

from core.roles import CARE_COORDINATOR
from patients.models import Patient
from tests.conftest import ROLE_USERNAMES, TEST_PASSWORD
from tests.patients.conftest import land  # noqa: F401 (fixtures used by alma)
from tests.patients.test_patient_views import alma  # noqa: F401 (the fixture: Alma in three sources)

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_coordinator_finds_a_misspelled_patient_and_reads_the_page(
    browser: Browser,
    live_server: object,
    role_users: dict[str, User],
    alma: Patient,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base_url = str(live_server)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(ROLE_USERNAMES[CARE_COORDINATOR])
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{base_url}/patients/search/")

    page.get_by_label("Name, phone, e-mail or record number").fill("Alma Kwigley")
    results = page.locator("#results table")
    expect(results).to_contain_text("Quigley")  # arrived by htmx while typing
    page.screenshot(path=str(ARTIFACTS / "patient-search.png"), full_page=True)
    results.get_by_role("link").first.click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Quigley")
    badges = page.locator(".sources-line .source-badge")
    expect(badges).to_have_count(3)
    phone = page.locator('dd[data-field="phone"] details.provenance')
    phone.locator("summary").click()
    expect(phone).to_contain_text("From crm")
    chart = page.locator('[data-plotly-chart][aria-label="Blood pressure (systolic and diastolic)"]')
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator(".scatterlayer .trace")).not_to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "patient-page.png"), full_page=True)
    page.close()
    assert problems == []
