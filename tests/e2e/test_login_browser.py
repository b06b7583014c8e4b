"""Each role signs in through a real browser, lands on its home page, and the page logs no console errors."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import ConsoleMessage, Page, expect

from core.roles import ADMINISTRATOR, CARE_COORDINATOR, DATA_STEWARD, EXECUTIVE
from tests.conftest import ROLE_USERNAMES, TEST_PASSWORD

HOMES = {
    CARE_COORDINATOR: ("/patients/", "Patients"),
    DATA_STEWARD: ("/governance/", "Governance"),
    EXECUTIVE: ("/analytics/", "Analytics"),
    ADMINISTRATOR: ("/admin/", "Site administration"),
}

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("role", list(HOMES))
def test_role_signs_in_and_lands_home_without_console_errors(
    page: Page, live_server: object, role_users: dict[str, User], role: str
) -> None:
    base_url = str(live_server)
    home_path, heading = HOMES[role]
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"} and "DevTools" not in message.text:
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.on(
        "response", lambda response: problems.append(f"HTTP {response.status}: {response.url}")
        if response.status >= 400 else None
    )  # fmt: skip

    page.goto(f"{base_url}/")
    expect(page).to_have_url(f"{base_url}/accounts/login/?next=/")
    page.get_by_label("Username").fill(ROLE_USERNAMES[role])
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{base_url}{home_path}")
    expect(page.get_by_role("heading", level=1).first).to_contain_text(heading)
    if role == EXECUTIVE:
        expect(page.locator(".chart-canvas .main-svg").first).to_be_visible()
    if role != ADMINISTRATOR:
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("button", name="Log out")).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert problems == []


def test_keyboard_user_can_sign_in(page: Page, live_server: object, role_users: dict[str, User]) -> None:
    base_url = str(live_server)

    page.goto(f"{base_url}/accounts/login/")
    # The username field has focus on load; typing before the focus lands would lose the first keys.
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(ROLE_USERNAMES[CARE_COORDINATOR])
    page.keyboard.press("Tab")
    page.keyboard.type(TEST_PASSWORD)
    page.keyboard.press("Enter")

    expect(page).to_have_url(f"{base_url}/patients/")


def test_wrong_password_shows_an_accessible_error(
    page: Page, live_server: object, role_users: dict[str, User]
) -> None:
    base_url = str(live_server)

    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill("executive")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_contain_text("did not match")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")


def test_steward_opens_source_systems_from_patients(
    page: Page, live_server: object, role_users: dict[str, User]
) -> None:
    from patients.models import Source
    from patients.services import source_create

    source_create(actor=None, slug="crm", name="Patient CRM", kind=Source.Kind.CRM)
    base_url = str(live_server)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(ROLE_USERNAMES[DATA_STEWARD])
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.get_by_role("button", name="Source systems and ingestion status").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Source systems")
    expect(page.get_by_role("rowheader")).to_contain_text("Patient CRM")
    assert problems == []
