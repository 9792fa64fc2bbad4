"""Single sign-on and each person's own page (#/me) in a real browser, against the local runner.

App Service Authentication is emulated as the platform would present it: the runner's settings say
WEBSITE_AUTH_ENABLED=true, and the browser context sends the X-MS-CLIENT-PRINCIPAL header App
Service would add for a signed-in session (Playwright `extra_http_headers`). Names and subjects are
hostile text: they must be shown as text, never run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.core.principal import ADMIN_ROLE
from tests.conftest import track
from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS, LAPTOP, PHONE, SCREENSHOTS, XSS, wait_for
from tests.runner import runner_for
from tests.unit.test_principal import principal_header

HOSTILE_NAME = "<img src=x onerror=alert(3)>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium as tests/e2e/test_console.py launches it (the system's, never a download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def runner(azurite, graph, dime, monkeypatch):
    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)
    runner = runner_for(azurite, graph, dime)
    runner.env["WEBSITE_AUTH_ENABLED"] = "true"
    runner.services.settings = replace(runner.services.settings, app_service_auth=True)
    with runner:
        yield runner
    client.close()


def principal(person: dict[str, Any], *roles: str, name: str = HOSTILE_NAME) -> str:
    import base64
    import json

    document = json.loads(base64.b64decode(principal_header(*roles, oid=person["id"])))
    for claim in document["claims"]:
        if claim["typ"] == "name":
            claim["val"] = name
    return base64.b64encode(json.dumps(document).encode()).decode()


class SignedIn:
    """A browser tab whose every request carries the principal header App Service would add."""

    def __init__(self, browser: Any, runner: Any, header: str, viewport: dict[str, int] = LAPTOP) -> None:
        self.context = browser.new_context(
            viewport=viewport, service_workers="block", extra_http_headers={"X-MS-CLIENT-PRINCIPAL": header}
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.origin = runner.origin

    def open(self, hash_: str = "") -> Any:
        self.page.goto(f"{self.origin}/api/console/{hash_}")
        return self.page

    def close(self) -> None:
        assert self.errors == [] and self.dialogs == []  # no script error, no injected alert
        self.context.close()


def at(days: float) -> str:
    moment = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def test_a_person_sees_only_their_own_settings_and_changes_them(browser, runner, graph):
    jane = graph.add_user(mail="jane@contoso.com")
    john = graph.add_user(mail="john@contoso.com")
    for person in (jane, john):
        track(runner.services, person)
    graph.create_event(jane["id"], subject=XSS, start=at(1), end=at(1.05), show_as="busy")
    graph.create_event(jane["id"], subject="Dentist", start=at(2), end=at(2.05), show_as="oof", sensitivity="private")
    graph.create_event(jane["id"], subject="Focus time", start=at(3), end=at(3.05), show_as="tentative")
    graph.create_event(john["id"], subject="John's secret", start=at(1), end=at(1.05))
    # An administrator set Jane's sensitivities: locked on her page.
    assert runner.request("PATCH", f"manage/resources/{jane['id']}", {"sensitivities": ["normal", "private"]})[0] == 200

    tab = SignedIn(browser, runner, principal(jane))
    page = tab.open("#/people")  # an administrator's page: she gets her own instead
    page.get_by_role("heading", name="My settings").wait_for()
    page.locator("tbody tr").first.wait_for()
    assert page.locator("#nav a").all_inner_texts() == ["My settings"]
    assert page.get_by_label("Management key").count() == 0  # no key prompt behind the sign-in
    assert HOSTILE_NAME in page.locator("main").inner_text()  # her hostile name, as text
    board = page.locator("main").inner_text()
    assert XSS in board and "John's secret" not in board
    dentist = page.locator("tbody tr", has_text="Dentist")
    assert "Private appointment" in dentist.inner_text()  # the board masks a private subject
    assert "shown as Focus time" in page.locator("tbody tr", has_text="Focus time").inner_text()
    locked = page.locator('fieldset[data-field="sensitivities"]')
    assert locked.locator("input").first.is_disabled() and "Locked by an administrator" in locked.inner_text()
    assert not page.locator('fieldset[data-field="showAs"] input').first.is_disabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "me.png"), full_page=True)

    # Stop sharing "tentative": the preview follows the draft, Save stores it (a resync follows).
    page.get_by_label("Tentative").uncheck()
    page.get_by_role("button", name="Preview").click()
    wait_for(lambda: "not shown" in page.locator("tbody tr", has_text="Focus time").inner_text())
    assert runner.services.store.get_resource(jane["id"]).consent.show_as >= {"tentative"}  # a preview saves nothing
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    stored = runner.services.store.get_resource(jane["id"])
    assert "tentative" not in stored.consent.show_as and stored.consent.sensitivities == {"normal", "private"}

    # The management API refuses her: signed in, but without the role.
    status = page.evaluate("fetch('/api/manage/resources').then(r => r.status)")
    assert status == 403
    tab.page.set_viewport_size(PHONE)
    page.reload()
    page.locator("tbody tr").first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "me-phone.png"), full_page=True)
    tab.close()


def test_an_administrator_signed_in_needs_no_key(browser, runner, graph):
    person = graph.add_user(mail="ann@contoso.com")
    track(runner.services, person)
    tab = SignedIn(browser, runner, principal(person, ADMIN_ROLE, name="Ann Admin"))
    page = tab.open("#/people")
    page.get_by_role("heading", name="People").wait_for()
    page.locator("tbody tr").first.wait_for()
    assert page.get_by_label("Management key").count() == 0
    assert "My settings" in page.locator("#nav").inner_text()
    assert "administrator" in page.locator("#nav").inner_text()
    assert tab.page.evaluate("sessionStorage.length") == 0  # no key anywhere
    tab.close()


def test_not_signed_in_behind_the_platform_offers_both_sign_ins(browser, runner):
    context = browser.new_context(viewport=LAPTOP, service_workers="block")
    page = context.new_page()
    page.goto(f"{runner.origin}/api/console/")
    page.get_by_label("Management key").wait_for()
    link = page.get_by_role("link", name="Sign in with your work account")
    assert link.get_attribute("href").startswith("/.auth/login/aad")
    assert "MANAGEMENT_KEY" in page.locator("main").inner_text() and "master" in page.locator("main").inner_text()
    context.close()
