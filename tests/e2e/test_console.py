"""The admin console in a real browser (Debian's Chromium driven by Playwright for Python), against
the local runner (the real functions over HTTP, queues polled from Azurite) and the fakes.

Each test writes screenshots of the pages it shows: into a temporary folder by default, so that
`make test` leaves committed files alone, and into docs/screenshots/ (linked from the README) with
`make screenshots`, which sets SCREENSHOTS_DIR. Chromium is the system's (`/usr/bin/chromium`,
`make chromium` installs it); Playwright's own is used only where that one is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.core.ids import appointment_guid
from shared.core.resources import resource_from_user
from tests.conftest import TENANT_ID
from tests.runner import runner_for

CHROMIUM = "/usr/bin/chromium"
INSTALL = "make chromium (as root: apt-get install -y chromium; else python -m playwright install chromium)"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or "/nonexistent")  # set by the fixture below
XSS = "<img src=x onerror=alert(1)>"
XSS_ID = "AAMk<img src=x onerror=alert(2)>"  # ids come from a service too: shown as text as well
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module", autouse=True)
def screenshots_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SCREENSHOTS_DIR (`make screenshots`: docs/screenshots/), else a temporary folder: running the
    tests never rewrites committed files."""
    global SCREENSHOTS
    wanted = os.environ.get("SCREENSHOTS_DIR")
    SCREENSHOTS = Path(wanted).resolve() if wanted else tmp_path_factory.mktemp("screenshots")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The system's Chromium, else Playwright's own (`python -m playwright install chromium`)."""
    from playwright.sync_api import Error, sync_playwright

    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Error:
            pytest.fail(f"Chromium is missing; install it with: {INSTALL}", pytrace=False)
        yield instance
        instance.close()


@pytest.fixture
def runner(azurite, graph, dime, monkeypatch):
    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)  # the fakes' deliveries reuse one client
    runner = runner_for(azurite, graph, dime)
    with runner:
        runner.start_polling(interval=0.05)
        yield runner
    client.close()


class Console:
    """One browser tab on the console; records script dialogs (an XSS would open one) and requests."""

    def __init__(self, browser: Any, runner: Any, viewport: dict[str, int] = LAPTOP, **options: Any) -> None:
        self.context = browser.new_context(viewport=viewport, service_workers="block", **options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.origin = runner.origin
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, hash_: str = "") -> Any:
        self.page.goto(f"{self.origin}/api/console/{hash_}")
        return self.page

    def sign_in(self, key: str) -> None:
        self.page.get_by_label("Management key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        assert self.errors == []  # no script error on any page shown
        self.context.close()


@pytest.fixture
def console(browser, runner) -> Iterator[Console]:
    tab = Console(browser, runner)
    yield tab
    tab.close()


def rendered(page: Any, action: Callable[[], Any]) -> None:
    """Do `action` (a click that navigates within the console) and wait until the page it leads to
    has been drawn: the shell numbers each finished render in main's data-renders."""
    before = page.get_attribute("main", "data-renders") or "0"
    action()
    page.wait_for_function("n => Number(document.querySelector('main').dataset.renders || 0) > n", arg=int(before))


def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def tomorrow(hour: int) -> str:
    day = datetime.now(UTC).date() + timedelta(days=1)
    return f"{day.isoformat()}T{hour:02d}:00:00"


def onboard(runner: Any, graph: Any, mail: str) -> dict[str, Any]:
    person = graph.add_user(mail=mail)
    status, _ = runner.request("PUT", f"manage/resources/{person['id']}")
    assert status == 201
    return person


# ------------------------------------------------------------------------------------------ tests


def test_static_files_over_http_carry_the_headers_and_refuse_traversal(runner):
    page = httpx.get(f"{runner.origin}/api/console/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(f"{runner.origin}/api/console/pages/transactions.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    again = httpx.get(f"{runner.origin}/api/console/app.js", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 200  # another file's ETag
    unchanged = httpx.get(f"{runner.origin}/api/console/", headers={"If-None-Match": page.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.content == b""
    for raw in (
        "/api/console/%2e%2e/function_app.py",
        "/api/console/..%2Fshared%2Fsettings.py",
        "/api/console/%2Fetc%2Fpasswd",
    ):
        with httpx.Client() as client:
            answer = client.send(httpx.Request("GET", runner.origin + raw))  # sent as written, not normalised
        assert answer.status_code == 404 and b"import" not in answer.content, raw
    assert httpx.get(f"{runner.origin}/api/manage/console").status_code == 401  # the settings need the key


def test_a_wrong_key_gets_the_401_message_and_the_key_stays_out_of_urls(console, runner):
    page = console.open()
    console.sign_in("not-the-key")
    alert = page.get_by_role("alert")
    assert "refused (401 Unauthorized)" in alert.inner_text()
    assert page.get_by_label("Management key").is_visible()  # asked again
    assert not page.locator("#nav").is_visible() and not page.get_by_role("button", name="Sign out").is_visible()
    assert page.evaluate("sessionStorage.length") == 0 and page.evaluate("localStorage.length") == 0
    console.shot("sign-in-401")
    console.sign_in(runner.management_key)
    page.get_by_role("heading", name="Overview").wait_for()
    assert page.evaluate("Object.values(sessionStorage)") == [runner.management_key]
    assert all(runner.management_key not in url and "code=" not in url for url in console.requests)
    assert all(url.startswith(runner.origin) for url in console.requests)  # nothing from elsewhere


def test_outage_failure_detail_then_retry_all_matching_reaches_zero(console, runner, graph, dime):
    person = onboard(runner, graph, "ann@contoso.com")
    wait_for(lambda: runner.queue_depths() and not any(runner.queue_depths().values()))
    dime.fail_next(count=10_000, status=503)  # Dime.Scheduler is down
    graph.auto_notify = True
    graph.notify_duplicates = 1
    graph.create_event(person["id"], subject="Site visit", start=tomorrow(9), end=tomorrow(10))
    graph.create_event(person["id"], subject="Review", start=tomorrow(11), end=tomorrow(12))
    graph.flush_notifications()

    page = console.open()
    console.sign_in(runner.management_key)
    page.get_by_role("heading", name="Overview").wait_for()
    # The failures become visible once the queue gives up (poison) and the overview refreshes.
    wait_for(lambda: runner.request("GET", "manage/transactions/count", status="failed")[1]["count"] == 2, 60)
    page.reload()
    failed_card = page.locator(".card", has_text="failed transactions")
    assert failed_card.locator(".n").inner_text() == "2"
    console.shot("overview")
    phone = console.context.new_page()  # sessionStorage is per tab: the new tab gets the key as a person would
    phone.set_viewport_size(PHONE)
    phone.add_init_script(f"sessionStorage.setItem('console.managementKey', {runner.management_key!r})")
    phone.goto(page.url)
    phone.locator(".card .n").first.wait_for()
    phone.screenshot(path=str(SCREENSHOTS / "overview-phone.png"), full_page=True)
    phone.close()

    rendered(page, failed_card.get_by_role("link").click)
    page.get_by_role("heading", name="Transactions").wait_for()
    rows = page.locator("tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2 and page.locator("tbody .status-failed").count() == 2
    console.shot("transactions")

    rendered(page, rows.first.get_by_role("link").click)
    page.get_by_role("heading", name="Transaction").wait_for()
    detail = page.locator("dl").inner_text()
    assert "DIME_UNAVAILABLE" in detail and "poisoned: the message failed all 5 deliveries" in detail
    assert page.locator("xpath=//dt[text()='Attempts']/following-sibling::dd[1]").inner_text() == "5"  # each one
    assert person["id"] in page.locator("pre").inner_text()  # the payload a retry sends again
    console.shot("transaction-detail")

    dime.clear_faults()  # the outage ends
    rendered(page, page.get_by_role("link", name="← Transactions").click)
    page.get_by_label("Status").select_option("failed")
    rendered(page, page.get_by_role("button", name="Apply").click)
    page.locator("tbody tr").first.wait_for()
    page.get_by_role("button", name="Retry all matching…").click()
    dialog = page.get_by_role("dialog")
    assert "Retry all 2 failed transactions matching this filter?" in dialog.inner_text()
    dialog.get_by_role("button", name="Retry 2").click()
    page.get_by_text("0 failed transactions still match this filter.").wait_for(timeout=60_000)
    wait_for(lambda: len(dime.appointments) == 2, 30)
    guids = {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in graph.events(person["id"])}
    assert set(dime.appointments) == guids


def test_onboard_a_person_and_see_their_events_arrive_with_hostile_text_kept_as_text(console, runner, graph, dime):
    person = graph.add_user(mail="ben@contoso.com")
    graph.create_event(person["id"], subject=XSS, start=tomorrow(9), end=tomorrow(10), body=XSS, id=XSS_ID)
    graph.create_event(person["id"], subject="Planning", start=tomorrow(13), end=tomorrow(14))
    page = console.open("#/people")
    console.sign_in(runner.management_key)
    page.get_by_role("heading", name="People").wait_for()
    assert "Nobody is onboarded yet" in page.locator("main").inner_text()
    page.get_by_label("User principal name or object id").fill("ben@contoso.com")
    page.get_by_role("button", name="Onboard").click()
    page.get_by_text("Onboarded ben@contoso.com").wait_for()
    wait_for(lambda: len(dime.appointments) == 2, 60)
    assert XSS in {a["Subject"] for a in dime.appointments.values()}
    page.reload()
    page.get_by_role("cell", name="ben@contoso.com").first.wait_for()
    console.shot("people")

    rendered(page, page.get_by_role("link", name="Transactions").click)
    page.locator("tbody tr").first.wait_for()
    assert page.locator("tbody .status-succeeded").count() == 2
    # The hostile subject and event id are shown as text: in the list, and on the Links page.
    page.locator("tbody tr").filter(has_text="succeeded").first.wait_for()
    page.get_by_role("cell", name=XSS).wait_for()
    page.goto(f"{runner.origin}/api/console/#/links")
    page.get_by_role("cell", name=XSS_ID).wait_for()
    assert page.locator("main img").count() == 0 and console.dialogs == []
    rendered(page, page.get_by_role("link", name="Appointments").click)
    page.get_by_role("heading", name="Appointments").wait_for()
    assert page.locator("tbody tr").count() == 2
    console.shot("appointments")
    rendered(page, page.get_by_role("link", name="Links").click)
    page.locator("tbody tr").first.wait_for()
    assert page.locator("tbody tr").count() == 2 and page.locator("main img").count() == 0
    console.shot("links")
    rendered(page, page.get_by_role("link", name="Log").click)
    page.get_by_role("heading", name="Log").wait_for()
    assert "CONSOLE_APPINSIGHTS_RESOURCE_ID" in page.locator("main").inner_text()
    console.shot("log")
    rendered(page, page.get_by_role("link", name="Unmatched").click)
    page.get_by_role("heading", name="Unmatched").wait_for()
    page.get_by_text("Not available").or_(page.locator("table")).or_(page.get_by_text("Nothing unmatched")).wait_for()
    console.shot("unmatched")


def test_people_edit_disable_resync_and_remove_with_confirmation(console, runner, graph):
    person = onboard(runner, graph, "cleo@contoso.com")
    page = console.open("#/people")
    console.sign_in(runner.management_key)
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Dime.Scheduler e-mail").fill("cleo.planner@contoso.com")
    page.get_by_role("checkbox", name="private").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved cleo@contoso.com").wait_for()
    _, saved = runner.request("GET", f"manage/resources/{person['id']}")
    assert saved["email"] == "cleo.planner@contoso.com" and "private" in saved["sensitivities"]

    page.get_by_role("button", name="Resync").click()
    page.get_by_text("Resync of cleo@contoso.com queued").wait_for()
    page.get_by_role("button", name="Disable…").click()  # asks first, like Remove
    dialog = page.get_by_role("dialog")
    assert "Disable cleo@contoso.com?" in dialog.inner_text() and "removed" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert runner.request("GET", f"manage/resources/{person['id']}")[1]["enabled"] is True  # nothing changed
    page.get_by_role("button", name="Disable…").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    page.get_by_text("Disabled cleo@contoso.com").wait_for()
    assert runner.request("GET", f"manage/resources/{person['id']}")[1]["enabled"] is False

    page.get_by_role("button", name="Remove…").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert runner.request("GET", f"manage/resources/{person['id']}")[0] == 200  # nothing removed
    page.get_by_role("button", name="Remove…").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    page.get_by_text("Removed cleo@contoso.com").wait_for()
    assert runner.request("GET", f"manage/resources/{person['id']}")[0] == 404


def test_select_many_and_archive_them_after_confirming(console, runner):
    from shared.adapters.storage.transactions_store import transaction_store
    from tests.e2e.test_transactions_admin import tx

    now = datetime.now(UTC)
    rows = [tx("aaaaaaaa-0000-4000-8000-000000000001", now - timedelta(minutes=i), message=XSS) for i in range(3)]
    transaction_store(runner.services).add_many(rows)
    page = console.open("#/transactions?status=failed")
    console.sign_in(runner.management_key)
    page.locator("tbody tr").first.wait_for()
    assert page.locator("tbody tr").count() == 3
    assert page.get_by_role("cell", name=XSS).count() == 3 and page.locator("main img").count() == 0
    page.get_by_label("Select every transaction on this page").check()
    page.get_by_label(f"Select transaction {rows[0].id}", exact=False).uncheck()
    assert page.get_by_text("2 selected").is_visible()
    page.get_by_role("button", name="Archive selected").click()
    dialog = page.get_by_role("dialog")
    assert "Archive 2 selected transaction(s)?" in dialog.inner_text()
    dialog.get_by_role("button", name="Archive").click()
    page.get_by_text("Archived 2 transaction(s).").wait_for()
    assert page.locator("tbody tr").count() == 1
    assert runner.request("GET", "manage/transactions/count", status="archived")[1]["count"] == 2
    assert console.dialogs == []


def test_the_overview_refreshes_by_itself(console, runner):
    from shared.adapters.storage.transactions_store import transaction_store
    from tests.e2e.test_transactions_admin import tx

    page = console.open()
    console.sign_in(runner.management_key)
    card = page.locator(".card", has_text="failed transactions").locator(".n")
    assert card.inner_text() == "0"
    transaction_store(runner.services).add_many([tx("aaaaaaaa-0000-4000-8000-000000000001", datetime.now(UTC))])
    page.locator(".card", has_text="failed transactions").get_by_text("1", exact=True).wait_for(timeout=25_000)
    assert page.locator(".card", has_text="DIME_REJECTED").locator("a").get_attribute("href") == (
        "#/transactions?status=failed&errorCode=DIME_REJECTED"
    )


def test_the_dime_reconcile_run_is_shown_on_the_overview_and_the_log_as_text(console, runner, graph, dime):
    from shared.adapters.storage.syncstate_store import SyncStateStore
    from shared.core.runs import DIME_RECONCILE, DIME_SCHEDULER_SCOPE, RunStats

    onboard(runner, graph, "cleo@contoso.com")
    dime.board.add_resource("R-CLEO", "cleo@contoso.com")
    wait_for(lambda: runner.queue_depths() and not any(runner.queue_depths().values()))  # onboarding's backfill done
    dime.board.plan("Install", datetime.fromisoformat(tomorrow(9) + "+00:00"),
                    datetime.fromisoformat(tomorrow(10) + "+00:00"), ["R-CLEO"])  # fmt: skip
    page = console.open()
    console.sign_in(runner.management_key)
    page.get_by_role("heading", name="Overview").wait_for()
    assert "has not run yet" in page.locator("main").inner_text()
    graph.reset_requests()
    dime.reset_calls()
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread: the timer gets its own
        pool.submit(runner.fire, "dime_reconcile_timer").result()
    page.reload()
    line = page.locator("#dime-reconcile").inner_text()
    assert line.startswith("completed ") and "1 writes, 0 deletes, 0 errors" in line and "1 appointments listed" in line
    assert f"{len(graph.requests)} Graph and {len(dime.requests)} Dime.Scheduler requests" in line  # as the fakes saw

    hostile = RunStats(DIME_RECONCILE, DIME_SCHEDULER_SCOPE, datetime.now(UTC), reason="timer")
    hostile.breaker = f"{XSS}: more than 20% of the links would be deleted"
    SyncStateStore(runner.services.store).save_run(hostile.finish("breaker-tripped", datetime.now(UTC)))
    page.reload()
    page.locator("#dime-reconcile", has_text="breaker-tripped").wait_for()
    assert XSS in page.locator("#dime-reconcile").inner_text()
    rendered(page, page.get_by_role("link", name="Log").click)
    row = page.locator("tbody tr", has_text="dime-reconcile of every mailbox")
    assert XSS in row.inner_text() and "breaker-tripped" in row.inner_text()
    assert page.locator("main img").count() == 0 and console.dialogs == []


def test_keyboard_only_sign_in_and_navigation(console, runner):
    page = console.open()
    page.get_by_label("Management key").wait_for()
    assert page.evaluate("document.activeElement.id") == "key"  # the field has the focus at once
    page.keyboard.type(runner.management_key)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Overview").wait_for()
    page.locator("body").focus()
    for _ in range(30):  # tab (past the Overview's links and chart tables) round to the header's Transactions link
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Transactions":
            break
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Transactions").wait_for()
    assert "No transaction matches this filter" in page.locator("main").inner_text()


def test_a_malformed_address_falls_back_to_the_overview_with_the_address_as_text(console, runner):
    """decodeURIComponent throws URIError on a lone "%": the shell shows the default page and says
    why, the address shown as text (no script dialog, no page error: `Console.close` checks)."""
    page = console.open()
    console.sign_in(runner.management_key)
    page.get_by_role("heading", name="Overview").wait_for()
    hostile = "transactions/%E0%A4%A<img src=x onerror=alert(3)>"
    rendered(page, lambda: page.evaluate("h => { location.hash = h; }", "#/" + hostile))
    page.get_by_role("heading", name="Overview").wait_for()
    alert = page.get_by_role("alert")
    assert "could not be read" in alert.inner_text() and "%E0%A4%A" in alert.inner_text()
    assert page.locator("main img").count() == 0 and console.dialogs == []
    assert page.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"
    rendered(page, lambda: page.evaluate("() => { location.hash = '#/transactions'; }"))
    page.get_by_role("heading", name="Transactions").wait_for()
    assert page.get_by_role("alert").count() == 0  # a readable address again: no message
    # An id holding a lone surrogate (from a service) still renders a link instead of throwing.
    assert page.evaluate("async () => (await import('/api/console/api.js')).part('a\\ud800b/c')") == "a%EF%BF%BDb%2Fc"


def test_first_load_size_and_time_to_first_render(browser, runner):
    """Figures, not a timing assertion: printed for the README (run with -s). A fresh tab with the
    key already in sessionStorage, so the time runs from navigation to the Overview's numbers."""
    context = browser.new_context(viewport=LAPTOP)
    context.add_init_script(f"sessionStorage.setItem('console.managementKey', {runner.management_key!r})")
    page = context.new_page()
    page.goto(f"{runner.origin}/api/console/")
    page.locator(".card .n").first.wait_for()
    figures = page.evaluate(
        """() => {
          const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
          const files = entries.filter(e => e.name.includes('/api/console'));
          const paint = performance.getEntriesByName('first-contentful-paint')[0];
          return {transfer: files.reduce((s, e) => s + e.transferSize, 0),
                  body: files.reduce((s, e) => s + e.encodedBodySize, 0), count: files.length,
                  api: entries.filter(e => e.name.includes('/api/manage')).reduce((s, e) => s + e.transferSize, 0),
                  rendered: performance.now(), paint: paint ? paint.startTime : null};
        }"""
    )
    context.close()
    print(
        f"\nconsole first load: {figures['count']} files, {figures['body']} bytes "
        f"({figures['transfer']} transferred incl. headers) + {figures['api']} bytes of API answers; "
        f"first contentful paint {figures['paint']:.0f} ms, Overview with its numbers {figures['rendered']:.0f} ms"
    )
    # The shell and the Overview only (the other pages load when opened): index, style, app, api,
    # dom, overview, chart.
    assert figures["count"] >= 6 and 0 < figures["body"] < 48 * 1024


def test_rules_page_preview_then_save_with_hostile_names_kept_as_text(console, runner, graph, dime):
    jane = graph.add_user(mail="jane@contoso.com")
    runner.services.store.put_resource(resource_from_user(jane, runner.services.settings.default_consent))
    dime.board.add_resource("R-JANE", "jane@contoso.com")
    runner.request("PUT", "manage/dime/hooks")

    def at(hour: int) -> datetime:
        return datetime.fromisoformat(tomorrow(hour)).replace(tzinfo=UTC)

    dime.board.plan("Hold " + XSS, at(9), at(10), ["R-JANE"], category="TEMP")
    dime.board.plan("Boiler check", at(11), at(12), ["R-JANE"], category="SERVICE")
    dime.board.flush()
    wait_for(lambda: len(graph.events(jane["id"])) == 2)

    page = console.open("#/rules")
    console.sign_in(runner.management_key)
    page.get_by_role("heading", name="Rules").wait_for()
    assert "No rules" in page.locator("main").inner_text()
    draft = [
        {"name": XSS, "when": {"field": "category", "op": "equals", "value": "temp"}, "then": {"action": "skip"}},
        {"name": "Service is tentative", "when": {"field": "category", "op": "equals", "value": "SERVICE"},
         "then": {"action": "place", "showAs": "tentative"}},
    ]  # fmt: skip
    page.get_by_label("Rules (JSON)").fill(json.dumps(draft))
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("heading", name="Preview: the next two weeks").wait_for()
    text = page.locator("main").inner_text()
    assert "1 would stay off Outlook, 0 would reach it, 1 would look different, 0 unchanged." in text
    page.get_by_role("cell", name="Hold " + XSS).wait_for()  # the subject, as text
    assert page.get_by_role("cell", name="stays off Outlook").count() == 1
    console.shot("rules-preview")

    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved 2 rule(s).").wait_for()
    page.get_by_role("cell", name=XSS, exact=True).wait_for()  # the rule's name in the list of rules in force
    assert page.get_by_role("cell", name='category is "temp"').count() == 1
    wait_for(lambda: [e["subject"] for e in graph.events(jane["id"])] == ["Boiler check"])
    assert graph.events(jane["id"])[0]["showAs"] == "tentative"
    # A stale version (someone else saved meanwhile) is refused with the reason, nothing lost.
    runner.request("PUT", "manage/rules", {"rules": [], "version": runner.request("GET", "manage/rules")[1]["version"]})
    page.get_by_role("button", name="Save").click()
    page.get_by_text("saved by someone else meanwhile").wait_for()
    bad = page.get_by_label("Rules (JSON)")
    bad.fill('[{"name": "x", "then": {"action": "place", "showAs": "away"}}]')
    page.get_by_role("button", name="Preview").click()
    page.get_by_text("rules[0].then.showAs: one of free").wait_for()
    assert page.locator("main img").count() == 0 and console.dialogs == []
    console.shot("rules")


def test_names_subjects_and_times_instead_of_ids_a_private_subject_stays_masked_and_an_appointments_timeline(
    console, runner, graph, dime
):
    """Issue 19: every list names the person and the subject (as the board shows it: a private
    event's is masked everywhere), search finds by person, subject and date, and one appointment's
    page shows its links and its timeline, where a failure is retried."""
    jane = graph.add_user(mail="jane@contoso.com", upn="jane.doe@contoso.com", display_name="Jane Doe")
    status, _ = runner.request("PUT", f"manage/resources/{jane['id']}", {"sensitivities": ["normal", "private"]})
    assert status == 201
    wait_for(lambda: runner.queue_depths() and not any(runner.queue_depths().values()))
    graph.auto_notify = True
    private = {"subject": "Doctor: oncology", "sensitivity": "private"}
    graph.create_event(jane["id"], start=tomorrow(9), end=tomorrow(10), **private)
    hostile = graph.create_event(jane["id"], subject=XSS, start=tomorrow(13), end=tomorrow(14))
    graph.flush_notifications()
    wait_for(lambda: len(dime.appointments) == 2, 60)
    assert "Private appointment" in {a["Subject"] for a in dime.appointments.values()}

    page = console.open("#/transactions")
    console.sign_in(runner.management_key)
    page.get_by_role("heading", name="Transactions").wait_for()
    page.get_by_role("cell", name="Private appointment").wait_for()
    main = page.locator("main")
    text = main.inner_text()
    assert "Jane Doe" in text and "jane.doe@contoso.com" in text and XSS in text
    assert jane["id"] not in text  # the person, not the mailbox id
    assert "oncology" not in text and page.locator("main img").count() == 0
    page.get_by_label("Search person, subject, date").fill("jane private")
    rendered(page, page.get_by_role("button", name="Apply").click)
    assert page.locator("tbody tr").count() == 1 and "Private appointment" in page.locator("tbody").inner_text()
    console.shot("transactions")

    rendered(page, page.get_by_role("link", name="Appointments").click)
    page.get_by_role("cell", name="Private appointment").wait_for()
    assert page.locator("tbody tr").count() == 2 and "oncology" not in main.inner_text()
    local_day = page.evaluate(
        "iso => new Intl.DateTimeFormat(undefined, { dateStyle: 'full' }).format(new Date(iso))", tomorrow(13) + "Z"
    )
    page.get_by_label("Search person, subject, date").fill(f"Doe {local_day.split(',')[0]}")
    rendered(page, page.get_by_role("button", name="Search").click)
    assert page.locator("tbody tr").count() == 2  # both are tomorrow; a day's name finds them
    page.get_by_label("Search person, subject, date").fill("img")
    rendered(page, page.get_by_role("button", name="Search").click)
    assert page.locator("tbody tr").count() == 1 and console.dialogs == []
    console.shot("appointments")

    rendered(page, page.get_by_role("link", name="Links").click)
    page.get_by_role("cell", name="Private appointment").wait_for()
    assert "oncology" not in main.inner_text() and "Jane Doe" in main.inner_text()
    console.shot("links")

    # A failure of the hostile event's next change, then its page: timeline, retry from there.
    dime.fail_next(count=1, status=400)
    graph.update_event(jane["id"], hostile["id"], body="moved")
    graph.flush_notifications()
    wait_for(lambda: runner.request("GET", "manage/transactions/count", status="failed")[1]["count"] == 1, 60)
    rendered(page, page.get_by_role("link", name=XSS).first.click)
    page.get_by_role("heading", name=XSS).wait_for()
    timeline = page.get_by_role("list", name="Timeline")
    items = timeline.locator("> li")
    assert items.count() >= 2  # its create, then the failed update (and whatever came after)
    times = [items.nth(i).locator("time").first.get_attribute("datetime") for i in range(items.count())]
    assert times == sorted(times, reverse=True)  # newest first
    failed = timeline.locator("> li.failed")
    assert failed.count() == 1 and "DIME_REJECTED" in failed.inner_text() and page.locator("main img").count() == 0
    assert "Payload" in failed.inner_text() and "Jane Doe" in page.locator("main").inner_text()
    console.shot("appointment")
    rendered(page, failed.get_by_role("button", name="Retry now").click)
    page.get_by_text("Retried: succeeded.").wait_for()
    assert page.get_by_role("list", name="Timeline").locator("> li.failed").count() == 0
    assert console.dialogs == []

    rendered(page, lambda: page.goto(f"{runner.origin}/api/console/#/appointments?q=private"))
    rendered(page, page.get_by_role("link", name="Private appointment").click)
    page.get_by_role("heading", name="Private appointment").wait_for()
    assert "oncology" not in page.locator("main").inner_text()
    rendered(page, page.get_by_role("link", name="← Appointments").click)


def test_the_transactions_table_fits_a_phone(browser, runner):
    """At 390 px nothing scrolls sideways, neither the page nor the table inside its box: rows are
    stacked, each value named by its column."""
    from shared.adapters.storage.transactions_store import transaction_store
    from tests.e2e.test_transactions_admin import tx

    now = datetime.now(UTC)
    text = f"{XSS} Dime.Scheduler answered 400 Bad Request: DimeSchedulerValidationErrorWithoutAnySpaces " * 3
    rows = [
        tx("aaaaaaaa-0000-4000-8000-000000000001", now - timedelta(minutes=i), message=text, attempts=5)
        for i in range(3)
    ]
    transaction_store(runner.services).add_many(rows)
    tab = Console(browser, runner, PHONE)
    try:
        page = tab.open("#/transactions?status=failed")
        tab.sign_in(runner.management_key)
        page.locator("tbody tr").first.wait_for()
        assert page.locator("tbody tr").count() == 3
        widths = page.evaluate(
            """() => ({page: document.scrollingElement.scrollWidth, view: window.innerWidth,
                       table: document.querySelector('main table').scrollWidth,
                       box: document.querySelector('main .scroll').clientWidth})"""
        )
        assert widths["view"] == PHONE["width"]
        assert widths["page"] <= PHONE["width"] and widths["table"] <= widths["box"], widths
        attempts = page.locator("tbody td[data-label='Attempts']").first
        assert attempts.inner_text() == "5" and attempts.is_visible()
        assert page.locator("main img").count() == 0 and tab.dialogs == []
        tab.shot("transactions-phone")
    finally:
        tab.close()


def test_unmatched_reads_in_words_in_local_time_and_forgets_an_entry_once_placed(browser, runner, graph, dime):
    """A planner's appointment for someone not onboarded: listed with readable headers, its subject
    (hostile text as text), the reason in words and its start in the viewer's zone; onboarding the
    person places it, and the entry is gone."""
    from zoneinfo import ZoneInfo

    dime.board.add_resource("R-FINN", "finn@contoso.com", name="Finn")
    runner.request("PUT", "manage/dime/hooks")
    start = datetime.fromisoformat(tomorrow(9)).replace(tzinfo=UTC)
    dime.board.plan("Boiler " + XSS, start, start + timedelta(hours=1), ["R-FINN"])
    dime.board.flush()
    wait_for(lambda: runner.request("GET", "manage/unmatched")[1]["items"])

    tab = Console(browser, runner, timezone_id="Pacific/Auckland", locale="en-GB")
    try:
        page = tab.open("#/unmatched")
        tab.sign_in(runner.management_key)
        page.locator("tbody tr").first.wait_for()
        heads = page.locator("thead th").all_inner_texts()
        assert heads == ["Subject", "Resource", "Start", "Reason", "Kind", "Appointment"]
        [row] = page.locator("tbody tr").all()
        assert row.get_by_role("cell", name="Boiler " + XSS).count() == 1 and page.locator("main img").count() == 0
        assert row.get_by_role("cell", name="R-FINN").count() == 1
        assert "Nobody onboarded here has the resource's e-mail" in row.inner_text()
        assert "not-onboarded" not in row.inner_text()  # the code, not shown raw
        shown = row.locator("time")
        assert shown.get_attribute("datetime") == start.strftime("%Y-%m-%dT%H:%M:%SZ")
        local = start.astimezone(ZoneInfo("Pacific/Auckland"))
        assert local.strftime("%H:%M:%S") in shown.inner_text() and str(local.day) in shown.inner_text()
        tab.shot("unmatched")

        finn = graph.add_user(mail="finn@contoso.com")
        assert runner.request("PUT", f"manage/resources/{finn['id']}")[0] == 201
        wait_for(lambda: [e["subject"] for e in graph.events(finn["id"])] == ["Boiler " + XSS])
        page.reload()
        page.get_by_text("Nothing unmatched").wait_for()
        assert runner.request("GET", "manage/unmatched")[1]["items"] == []
        assert tab.dialogs == []
    finally:
        tab.close()


def test_the_overview_charts_show_the_apis_numbers_per_hour_and_day(console, runner, graph):
    """A fortnight of outcomes in both directions: every bar's title (what a person hovers) and the
    table behind each chart carry exactly the status API's numbers, drawn as SVG without a request
    elsewhere; then the desktop and phone screenshots of the Overview."""
    import re

    from shared.adapters.storage.transactions_store import transaction_store
    from shared.core.transactions import Status
    from tests.e2e.test_transactions_admin import tx

    now = datetime.now(UTC)
    rows = []
    for hours_ago in range(0, 14 * 24):  # a busy fortnight, quieter at night, a bad afternoon
        when = now - timedelta(hours=hours_ago, minutes=7)
        for n in range((hours_ago * 7) % 5 + (2 if 6 <= when.hour <= 18 else 0)):
            rows.append(tx(f"aaaaaaaa-0000-4000-8000-00000000000{n % 3}", when, Status.SUCCEEDED))
            rows[-1].direction = "dime-to-outlook" if n % 3 == 0 else "outlook-to-dime"
        for n in range(3 if 20 <= hours_ago <= 26 else hours_ago % 11 == 0):
            rows.append(tx("aaaaaaaa-0000-4000-8000-000000000001", when + timedelta(minutes=n)))
            rows[-1].direction = "dime-to-outlook" if n % 2 else "outlook-to-dime"
    transaction_store(runner.services).add_many(rows)
    person = onboard(runner, graph, "dana@contoso.com")
    wait_for(lambda: runner.queue_depths() and not any(runner.queue_depths().values()))  # the backfill (delta) ran
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread: the timer gets its own
        pool.submit(runner.fire, "retry_failed").result()
    status, body = runner.request("GET", "manage/status")
    assert status == 200
    history = body["history"]
    assert sum(b["outlookToDime"]["succeeded"] + b["dimeToOutlook"]["succeeded"] for b in history["days"]) == sum(
        1 for r in rows if r.status is Status.SUCCEEDED and r.created_at >= history["days"][0]["day"]
    )

    page = console.open()
    console.sign_in(runner.management_key)
    page.locator("#outlookToDime-hours svg").wait_for()
    for key in ("outlookToDime", "dimeToOutlook"):
        for span, buckets in (("hours", history["hours"]), ("days", history["days"])):
            chart = page.locator(f"#{key}-{span}")
            titles = chart.locator("svg .bucket > title").evaluate_all("nodes => nodes.map(n => n.textContent)")
            shown = [tuple(int(n) for n in re.search(r": (\d+) succeeded, (\d+) failed$", t).groups()) for t in titles]
            assert shown == [(b[key]["succeeded"], b[key]["failed"]) for b in buckets], (key, span)
            cells = chart.locator("details tbody tr").evaluate_all(
                "rows => rows.map(r => [Number(r.cells[1].textContent), Number(r.cells[2].textContent)])"
            )
            assert [tuple(c) for c in cells] == shown
            ok, bad = sum(s for s, _ in shown), sum(f for _, f in shown)
            assert chart.locator("svg").get_attribute("aria-label").endswith(f": {ok} succeeded, {bad} failed")
    assert any(b["outlookToDime"]["failed"] for b in history["hours"])  # the bad afternoon is in view
    assert page.locator("#dimeToOutlook-days svg rect.bad").count() > 0
    queue_titles = page.locator("#queue-depths svg .bucket > title").evaluate_all("ns => ns.map(n => n.textContent)")
    assert "graph-notifications: 0" in queue_titles and "dime-publications-poison: 0" in queue_titles
    timers = page.locator("#timers").inner_text()
    assert "Retry of failed transactions" in timers and "1 of 1 mailboxes ran" in timers, timers
    retry_row = page.locator("#timers tr", has_text="Retry of failed transactions").inner_text()
    assert "completed" in retry_row and f"{body['failedTransactions']['total']} failed waiting" in retry_row
    assert "never" in page.locator("#timers tr", has_text="Subscription renewal").inner_text()
    assert person["id"]
    assert all(url.startswith(runner.origin) for url in console.requests)
    page.locator("#dimeToOutlook-days summary").click()  # an opened table survives the refresh
    updated = page.locator(".bar time").get_attribute("datetime")
    page.evaluate("document.activeElement.blur()")  # (the refresh waits while the focus is in the page)
    page.wait_for_function(
        "t => document.querySelector('.bar time').getAttribute('datetime') !== t", arg=updated, timeout=45_000
    )
    assert page.locator("#dimeToOutlook-days details").get_attribute("open") is not None
    assert page.locator("#outlookToDime-days details").get_attribute("open") is None
    page.locator("#dimeToOutlook-days summary").click()
    console.shot("overview")
    phone = console.context.new_page()
    phone.set_viewport_size(PHONE)
    phone.add_init_script(f"sessionStorage.setItem('console.managementKey', {runner.management_key!r})")
    phone.goto(page.url)
    phone.locator("#dimeToOutlook-days svg").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing wider than a phone
    phone.screenshot(path=str(SCREENSHOTS / "overview-phone.png"), full_page=True)
    phone.close()


PAGES_SHOWN = ["overview", "people", "transactions", "appointments", "links", "unmatched", "rules", "log"]


def test_every_page_at_phone_and_desktop_width_nothing_scrolls_sideways(browser, runner, graph, dime):
    """Issue 19's trial on a phone: every page, with data on it (a person and her events, a
    planner's appointment, one for someone not onboarded, a failure), fits 390 px without a
    page-wide sideways scroll; wide tables scroll inside their own box. Screenshots of each page
    at both widths (make screenshots)."""
    jane = graph.add_user(mail="jane@contoso.com", display_name="Jane Doe")
    status, _ = runner.request("PUT", f"manage/resources/{jane['id']}")
    assert status == 201
    graph.auto_notify = True
    graph.create_event(jane["id"], subject="Quarterly review " + XSS, start=tomorrow(9), end=tomorrow(10))
    graph.flush_notifications()
    dime.board.add_resource("R-JANE", "jane@contoso.com")
    dime.board.add_resource("R-FINN", "finn@contoso.com")
    runner.request("PUT", "manage/dime/hooks")
    start = datetime.fromisoformat(tomorrow(14)).replace(tzinfo=UTC)
    dime.board.plan("Boiler service", start, start + timedelta(hours=2), ["R-JANE", "R-FINN"])
    dime.board.flush()
    wait_for(lambda: len(dime.appointments) == 1 and runner.request("GET", "manage/unmatched")[1]["items"], 60)

    for name, viewport in (("phone", PHONE), ("desktop", LAPTOP)):
        tab = Console(browser, runner, viewport)
        try:
            page = tab.open("#/log")  # the loop starts elsewhere: each step is a navigation
            tab.sign_in(runner.management_key)
            page.get_by_role("heading", name="Log").wait_for()
            for slug in PAGES_SHOWN:
                rendered(page, lambda page=page, slug=slug: page.goto(f"{runner.origin}/api/console/#/{slug}"))
                page.locator("main h1").first.wait_for()
                wide = page.evaluate("() => document.scrollingElement.scrollWidth")
                assert wide <= viewport["width"], (slug, name, wide)
                if slug in ("people", "transactions", "appointments", "links"):
                    page.get_by_text("Jane Doe").first.wait_for()  # the person's name, not an id
                if name == "phone":
                    tab.shot(f"{slug}-phone")
            rendered(page, lambda page=page: page.goto(f"{runner.origin}/api/console/#/appointments"))
            rendered(page, page.locator("tbody a[href^='#/appointment/']").first.click)
            page.locator("main h1").first.wait_for()
            title = page.locator("main h1").inner_text()
            assert "#/appointment/" in page.url and title in ("Boiler service", "Quarterly review " + XSS)
            assert page.evaluate("() => document.scrollingElement.scrollWidth") <= viewport["width"]
            tab.shot("appointment-phone" if name == "phone" else "appointment")
            assert page.locator("main img").count() == 0 and tab.dialogs == []
        finally:
            tab.close()
