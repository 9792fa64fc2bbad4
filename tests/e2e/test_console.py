"""The admin console in a real browser (Debian's Chromium driven by Playwright for Python), against
the local runner (the real functions over HTTP, queues polled from Azurite) and the fakes.

Each test writes screenshots of the pages it shows to docs/screenshots/ (linked from the README).
Chromium is the system's (`/usr/bin/chromium`, `apt-get install -y chromium`): Playwright's own
browser download cannot work on machines without internet, so it is never used.
"""

from __future__ import annotations

import json
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
INSTALL = "apt-get update && apt-get install -y chromium"
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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
XSS = "<img src=x onerror=alert(1)>"
XSS_ID = "AAMk<img src=x onerror=alert(2)>"  # ids come from a service too: shown as text as well
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium is missing; install it with: {INSTALL}", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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

    def __init__(self, browser: Any, runner: Any, viewport: dict[str, int] = LAPTOP) -> None:
        self.context = browser.new_context(viewport=viewport, service_workers="block")
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
    # Subjects are not kept by the app (only ids, codes and messages are): the hostile event id is
    # what the console shows, in the detail and on the Links page.
    page.locator("tbody tr").filter(has_text="succeeded").first.wait_for()
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
    page.get_by_role("button", name="Disable").click()
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
    for _ in range(10):  # tab through the header to the Transactions link
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
    assert figures["count"] >= 10 and 0 < figures["body"] < 64 * 1024


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
