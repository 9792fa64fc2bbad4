"""Hook registration, publications over real HTTP from the fake planning board, and the unmatched report."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from shared.core.resources import resource_from_user
from shared.usecases.dime_to_outlook.hooks import hook_id_of
from tests.runner import runner_for

START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
END = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def runner(azurite, graph, dime, monkeypatch):
    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)
    runner = runner_for(azurite, graph, dime)
    with runner:
        yield runner
    client.close()


def ours(graph, mailbox):
    return [
        e
        for e in graph.events(mailbox)
        if any(p["id"] == TAG_PROPERTY_ID for p in e.get("singleValueExtendedProperties", []))
    ]


def test_hook_id_from_location_or_body():
    assert hook_id_of(None, {"Location": "https://x/webhooks/AppointmentCreated/abc123"}) == "abc123"
    assert hook_id_of({"Id": 42}, {}) == "42"
    assert hook_id_of({"hookId": "h-1"}, {"location": "/webhooks/AppointmentCreated"}) == "h-1"
    assert hook_id_of({}, {}) is None


@pytest.mark.parametrize("where", ["location", "body", "both"])
def test_register_hooks_then_the_board_publishes_to_them(runner, graph, dime, where):
    dime.board.hook_id_in = where
    dime.board.duplicates = 3
    dime.board.reorder = True
    jane = graph.add_user(mail="jane@contoso.com")
    runner.services.store.put_resource(resource_from_user(jane, runner.services.settings.default_consent))
    dime.board.add_resource("R-JANE", "jane@contoso.com")

    status, body = runner.request("PUT", "manage/dime/hooks")
    assert status == 201, body
    assert len(body["created"]) == 3 and all(h["hookId"] for h in body["created"])
    assert sorted(h["change"] for h in dime.board.hooks.values()) == ["created", "deleted", "updated"]
    assert all(
        h["notificationURL"].split("?")[0].endswith("/api/dime/publications/" + h["change"])
        for h in dime.board.hooks.values()
    )
    assert runner.request("PUT", "manage/dime/hooks")[1]["created"] == []  # kept, not registered twice

    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    dime.board.update(guid, start=START.replace(hour=10), end=END.replace(hour=11))
    assert set(dime.board.flush()) == {200}
    runner.drain()
    [event] = ours(graph, jane["id"])
    assert event["start"]["dateTime"].startswith("2026-11-24T10:00:00")  # reordered: the newer one wins
    dime.board.delete(guid)
    dime.board.flush()
    runner.drain()
    assert ours(graph, jane["id"]) == []

    status, body = runner.request("DELETE", "manage/dime/hooks")
    assert status == 200 and len(body["removed"]) == 3 and dime.board.hooks == {}


def test_failed_deliveries_are_retried_by_dime_scheduler(runner, graph, dime, monkeypatch):
    jane = graph.add_user(mail="jane@contoso.com")
    runner.services.store.put_resource(resource_from_user(jane, runner.services.settings.default_consent))
    dime.board.add_resource("R-JANE", "jane@contoso.com")
    runner.request("PUT", "manage/dime/hooks")
    broken = runner.services.queues.send_many

    def down(*args, **kwargs):
        raise OSError("storage down")

    monkeypatch.setattr(runner.services.queues, "send_many", down)
    dime.board.plan("Visit", START, END, ["R-JANE"])
    assert dime.board.flush() == [503]
    monkeypatch.setattr(runner.services.queues, "send_many", broken)
    assert dime.board.retry_deliveries() == [200]
    runner.drain()
    assert len(ours(graph, jane["id"])) == 1


def test_connector_alternative_with_basic_credentials(azurite, graph, dime, monkeypatch):
    from tests.conftest import clean_storage, settings_env
    from tests.runner import LocalRunner, build_services

    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)
    runner = LocalRunner()
    env = settings_env(
        azurite, graph.base_url, dime.base_url, DIME_WEBHOOK_USERNAME="dime", DIME_WEBHOOK_PASSWORD="s" * 24
    )
    runner.services = build_services(env, clock=runner.clock)
    clean_storage(runner.services)
    with runner:
        jane = graph.add_user(mail="jane@contoso.com")
        runner.services.store.put_resource(resource_from_user(jane, runner.services.settings.default_consent))
        dime.board.add_resource("R-JANE", "jane@contoso.com")
        dime.board.add_connector(runner.url("dime/publications"), auth=("dime", "s" * 24))
        dime.board.add_connector(runner.url("dime/publications"), auth=("dime", "wrong-password-123"))
        dime.board.plan("Visit", START, END, ["R-JANE"])
        assert sorted(dime.board.flush()) == [200, 401]
        runner.drain()
        assert len(ours(graph, jane["id"])) == 1
    client.close()


def test_unmatched_report(runner, graph, dime):
    jane = graph.add_user(mail="jane@contoso.com")
    runner.services.store.put_resource(resource_from_user(jane, runner.services.settings.default_consent))
    dime.board.add_resource("R-JANE", "jane@contoso.com")
    dime.board.add_resource("R-OFF", "off@contoso.com", exchange_enabled=False)
    dime.board.add_resource("R-NOBODY", "nobody@contoso.com")  # nobody onboarded here has this e-mail
    runner.request("PUT", "manage/dime/hooks")
    dime.board.plan("Crew day", START, END, ["R-JANE", "R-OFF", "R-NOBODY"])
    dime.board.flush()
    runner.drain()
    status, body = runner.request("GET", "manage/unmatched")
    assert status == 200
    assert {(a["kind"], a["resource"], a["reason"]) for a in body["items"]} == {
        ("assignment", "R-OFF", "integration-disabled"),
        ("assignment", "R-NOBODY", "not-onboarded"),
    }
    assert body["items"][0]["subject"] == "Crew day" and body["truncated"] is False


def test_onboarding_backfills_the_planners_appointments(runner, graph, dime):
    from datetime import timedelta

    soon = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    dime.board.add_resource("R-JANE", "jane@contoso.com")
    dime.board.plan("Already planned", soon, soon + timedelta(hours=2), ["R-JANE"])
    dime.board.outbox.clear()  # published before the app was listening
    jane = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    status, _ = runner.request("PUT", "manage/resources/jane@contoso.onmicrosoft.com")
    assert status == 201
    runner.drain()
    assert [e["subject"] for e in ours(graph, jane["id"])] == ["Already planned"]
