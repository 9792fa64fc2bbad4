"""The local runner (tests/runner.py): real HTTP routes, queue polling and timers on demand."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from shared.core.ids import appointment_guid
from shared.names import NOTIFICATIONS_QUEUE
from tests.conftest import TENANT_ID
from tests.runner import _route_pattern, runner_for


@pytest.fixture
def runner(azurite, graph, dime, monkeypatch):
    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)  # the fakes' deliveries reuse one client
    runner = runner_for(azurite, graph, dime)
    with runner:
        yield runner
    client.close()


def test_route_templates_match_parameters_and_literals():
    pattern = _route_pattern("manage/resources/{mailbox}/resync")
    assert pattern.match("manage/resources/jane@contoso.com/resync").groupdict() == {"mailbox": "jane@contoso.com"}
    assert pattern.match("manage/resources/a/b/resync") is None


def test_every_trigger_is_indexed(runner):
    assert {"notifications", "lifecycle", "health"} <= {r.name for r in runner.http_routes}
    assert NOTIFICATIONS_QUEUE in runner.queues and NOTIFICATIONS_QUEUE + "-poison" in runner.queues
    assert "retry_failed" in runner.timers


def test_http_keys_methods_and_anonymous_routes(runner):
    # Anonymous, and honest about the app the runner serves: its settings are the runner's (the
    # process environment holds none of them), its storage is Azurite.
    assert runner.request("GET", "health") == (
        200,
        {"status": "ok", "checks": {"settings": "ok", "keyVault": "ok", "storage": "ok"}},
    )
    assert httpx.get(f"{runner.origin}/api/manage/status").status_code == 401  # no key
    assert httpx.get(f"{runner.origin}/api/manage/status?code=wrong").status_code == 401
    # the host key no longer opens the management routes: the app's own MANAGEMENT_KEY does
    assert httpx.get(f"{runner.origin}/api/manage/status", headers={"x-functions-key": runner.key}).status_code == 401
    keyed = {"x-functions-key": runner.management_key}
    assert httpx.get(f"{runner.origin}/api/manage/status", headers=keyed).status_code == 200
    assert httpx.get(f"{runner.origin}/api/nothing-here").status_code == 404
    assert httpx.delete(f"{runner.origin}/api/notifications?code={runner.key}").status_code == 405


def test_onboard_over_http_then_changes_flow_through_webhook_queue_and_timers(runner, graph, dime):
    person = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    status, body = runner.request("PUT", f"manage/resources/{person['userPrincipalName']}", {"showAs": ["busy"]})
    assert status == 201 and body["subscription"]["id"] in {s["id"] for s in graph.subscriptions()}
    runner.drain()  # the onboarding resync

    graph.auto_notify = True
    graph.notify_duplicates = 3
    event = graph.create_event(person["id"], subject="Visit", start="2026-11-24T09:00:00", end="2026-11-24T10:00:00")
    graph.create_event(person["id"], subject="Lunch", show_as="free")
    dime.fail_next(count=1000, status=503)  # every delivery fails: poisoned, then a failed transaction
    assert set(graph.flush_notifications()) == {202}
    summary = runner.drain()
    dime.clear_faults()
    assert summary.runs[NOTIFICATIONS_QUEUE].poisoned >= 1 and dime.appointments == {}

    runner.clock.advance(timedelta(hours=7))  # past any backoff
    runner.fire("retry_failed")
    runner.drain()
    guid = appointment_guid(TENANT_ID, person["id"], event["id"])
    assert list(dime.appointments) == [guid] and dime.appointments[guid]["Subject"] == "Visit"


def test_background_polling_delivers_without_drain(runner, graph, dime):
    person = graph.add_user(mail="jane@contoso.com")
    assert runner.request("PUT", f"manage/resources/{person['id']}")[0] == 201
    graph.auto_notify = True
    runner.start_polling(interval=0.05)
    graph.create_event(person["id"], subject="Polled", start="2026-11-24T09:00:00", end="2026-11-24T10:00:00")
    graph.flush_notifications()
    deadline = time.monotonic() + 20
    while not dime.appointments and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop_polling()
    assert [a["Subject"] for a in dime.appointments.values()] == ["Polled"]


def test_route_parameters_are_url_decoded_like_the_host(runner, graph):
    person = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    assert runner.request("PUT", f"manage/resources/{person['id']}")[0] == 201
    answer = httpx.get(
        f"{runner.origin}/api/manage/resources/jane%40contoso.onmicrosoft.com?code={runner.management_key}"
    )
    assert answer.status_code == 200 and answer.json()["id"] == person["id"]


def test_a_dying_poller_thread_says_so(runner, capfd):
    def broken(**kwargs):
        raise RuntimeError("storage went away")

    runner.drain = broken
    runner.start_polling(interval=0.01)
    deadline = time.monotonic() + 10
    while runner.poller_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(runner.poller_error, RuntimeError)
    assert "queue poller died: RuntimeError: storage went away" in capfd.readouterr().err
