"""Hook registration, publications over real HTTP from the fake planning board, the publications
key, connectors per CRUD type, and the unmatched report."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from shared.core.dime_to_outlook.publications_key import hook_fingerprint, keyed_url
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from shared.core.resources import resource_from_user
from shared.usecases.dime_to_outlook.hooks import hook_id_of
from tests.conftest import DIME_PUBLICATIONS_KEY
from tests.runner import build_services, runner_for

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


def publications_url(runner, change: str | None = None, key: str = DIME_PUBLICATIONS_KEY) -> str:
    """The URL a hook or connector is given: the publications route with its own key in ?code=."""
    return keyed_url(runner.origin + "/api/dime/publications", change, key)


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
        h["notificationURL"] == publications_url(runner, h["change"]) for h in dime.board.hooks.values()
    )  # the publications key, never the host key the Graph URLs carry
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
    from shared.adapters.storage.aio_queues import AsyncQueueSender

    working = AsyncQueueSender.send_many

    async def down(*args, **kwargs):
        raise OSError("storage down")

    monkeypatch.setattr(AsyncQueueSender, "send_many", down)
    dime.board.plan("Visit", START, END, ["R-JANE"])
    assert dime.board.flush() == [503]
    monkeypatch.setattr(AsyncQueueSender, "send_many", working)
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
        dime.board.add_connector(publications_url(runner), auth=("dime", "s" * 24))
        dime.board.add_connector(publications_url(runner), auth=("dime", "wrong-password-123"))
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


def onboard_jane(runner, graph, dime):
    jane = graph.add_user(mail="jane@contoso.com")
    runner.services.store.put_resource(resource_from_user(jane, runner.services.settings.default_consent))
    dime.board.add_resource("R-JANE", "jane@contoso.com")
    return jane


class Touched(AssertionError):
    """A refused request touched state."""


@pytest.mark.parametrize("route", ["dime/publications", "dime/publications/deleted"])
@pytest.mark.parametrize("sent", ["host key in ?code=", "host key in x-functions-key", "another key", "no key"])
def test_only_the_publications_key_opens_the_publications_routes(runner, graph, dime, monkeypatch, route, sent):
    """The host key (every Graph notification URL carries it) or any key but DIME_PUBLICATIONS_KEY:
    401, in O(1), with no queue and no table touched (a touch would fail the request instead)."""
    jane = onboard_jane(runner, graph, dime)
    dime.board.add_connector(publications_url(runner, "created"), crud=("created",))
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    assert dime.board.flush() == [200]
    runner.drain()
    assert len(ours(graph, jane["id"])) == 1
    payload = dime.board.payload(dime.board.appointments[guid])

    services = runner.services

    def touched(*args, **kwargs):
        raise Touched("a refused publication touched state")

    from shared.adapters.storage.aio_queues import AsyncQueueSender
    from shared.adapters.storage.aio_tables import AsyncTables

    async def touched_async(*args, **kwargs):
        touched()

    with monkeypatch.context() as patch:
        for name in ("send", "send_many"):
            patch.setattr(services.queues, name, touched)
        for name in ("table", "add_transaction"):
            patch.setattr(services.store, name, touched)
        for name in ("send", "send_many", "send_raw"):  # the asynchronous adapters, every way in
            patch.setattr(AsyncQueueSender, name, touched_async)
        for name in ("call", "get", "query", "submit"):
            patch.setattr(AsyncTables, name, touched_async)
        url, headers = runner.origin + "/api/" + route, {}
        if sent == "host key in ?code=":
            url = runner.url(route)
        elif sent == "host key in x-functions-key":
            headers["x-functions-key"] = runner.key
        elif sent == "another key":
            url = keyed_url(url, None, "f" * 64)
        answer = httpx.post(url, json=payload, headers=headers)
        assert answer.status_code == 401, answer.text
    runner.drain()
    assert len(ours(graph, jane["id"])) == 1  # the forged delete deleted nothing
    answer = httpx.post(
        runner.origin + "/api/" + route, json=payload, headers={"x-functions-key": DIME_PUBLICATIONS_KEY}
    )
    assert answer.status_code == 200, answer.text  # the same body with the right key (in the header) is taken


def test_a_rotated_key_re_registers_the_hooks_and_nothing_else_does(runner, graph, dime):
    from shared.adapters.storage.hook_rows import hook_rows

    status, body = runner.request("PUT", "manage/dime/hooks")
    assert status == 201 and len(body["created"]) == 3
    first = dict(dime.board.hooks)
    assert all(f"code={DIME_PUBLICATIONS_KEY}" in h["notificationURL"] for h in first.values())
    assert all(f"code={runner.key}" not in h["notificationURL"] for h in first.values())

    runner.fire("renew_subscriptions")  # nothing rotated: nothing re-registered
    status, body = runner.request("PUT", "manage/dime/hooks")
    assert (status, body["created"], body["replaced"], body["kept"]) == (200, [], [], 3)
    assert dime.board.hooks == first

    rotated = "rotated-publications-key-" + "9" * 20
    env = {**runner.env, "DIME_PUBLICATIONS_KEY": rotated, "DIME_PUBLICATIONS_KEY_PREVIOUS": DIME_PUBLICATIONS_KEY}
    runner.services = build_services(env, clock=runner.clock)
    runner.fire("renew_subscriptions")
    assert len(dime.board.hooks) == 3 and set(dime.board.hooks).isdisjoint(first)  # new ones, old ones deleted
    assert all(
        h["notificationURL"] == publications_url(runner, h["change"], rotated) for h in dime.board.hooks.values()
    )
    rows = hook_rows(runner.services.store)
    assert {r.hook_id for r in rows} == set(dime.board.hooks) and not any(r.previous_hook_id for r in rows)
    assert all(
        r.made_with == hook_fingerprint(rotated, publications_url(runner, r.url.rsplit("/", 1)[1], rotated))
        for r in rows
    )
    assert all(rotated not in r.url and rotated not in r.made_with for r in rows)
    status, body = runner.request("PUT", "manage/dime/hooks")
    assert (status, body["replaced"], body["kept"]) == (200, [], 3)

    jane = onboard_jane(runner, graph, dime)
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    assert dime.board.flush() == [200]
    runner.drain()
    assert len(ours(graph, jane["id"])) == 1
    late = dime.board.payload(dime.board.appointments[guid])
    assert httpx.post(publications_url(runner, "updated"), json=late).status_code == 200  # previous: still taken

    runner.services = build_services({k: v for k, v in env.items() if not k.endswith("_PREVIOUS")}, clock=runner.clock)
    assert httpx.post(publications_url(runner, "updated"), json=late).status_code == 401  # rotation over
    assert httpx.post(publications_url(runner, "updated", rotated), json=late).status_code == 200


def test_a_replaced_hook_that_cannot_be_deleted_waits_in_its_row(runner, graph, dime, monkeypatch):
    """Never lose a hook id: the old hook is deleted after its successor is saved, and a failed
    delete is retried by the next pass (Dime.Scheduler would otherwise post to it forever)."""
    from shared.adapters.storage.hook_rows import hook_rows
    from shared.core.transactions import ErrorCode, SyncError

    runner.request("PUT", "manage/dime/hooks")
    first = set(dime.board.hooks)
    env = {**runner.env, "DIME_PUBLICATIONS_KEY": "r" * 40}
    runner.services = build_services(env, clock=runner.clock)
    from shared.adapters.dime_async import AsyncDimeGateway

    real = AsyncDimeGateway.delete_hook

    async def down(*args):
        raise SyncError(ErrorCode.DIME_UNAVAILABLE, "Dime.Scheduler failed (503)")

    monkeypatch.setattr(AsyncDimeGateway, "delete_hook", down)
    status, body = runner.request("PUT", "manage/dime/hooks")
    assert status == 502 and len(body["replaced"]) == 3
    assert {e["error"] for e in body["errors"]} == {"HOOK_NOT_REMOVED"}
    assert {r.previous_hook_id for r in hook_rows(runner.services.store)} == first
    assert len(dime.board.hooks) == 6  # old and new both post meanwhile: duplicates are harmless

    monkeypatch.setattr(AsyncDimeGateway, "delete_hook", real)
    runner.fire("renew_subscriptions")
    assert set(dime.board.hooks).isdisjoint(first) and len(dime.board.hooks) == 3
    assert not any(r.previous_hook_id for r in hook_rows(runner.services.store))


def test_deletes_reach_outlook_through_one_connector_per_crud_type(runner, graph, dime):
    """The vendor's SDK (``Connector.CrudTypes``,
    https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Models/Connector/Crud.cs): a connector with "D" ticked
    posts deletes with the same schema and
    nothing saying "deleted"; its own URL (/publications/deleted) makes the delete explicit."""
    jane = onboard_jane(runner, graph, dime)
    for change in ("created", "updated", "deleted"):
        dime.board.add_connector(publications_url(runner, change), crud=(change,))
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    dime.board.update(guid, start=START.replace(hour=10), end=END.replace(hour=11))
    assert dime.board.flush() == [200, 200]
    runner.drain()
    [event] = ours(graph, jane["id"])
    assert event["start"]["dateTime"].startswith("2026-11-24T10:00:00")
    dime.board.delete(guid)
    assert dime.board.flush() == [200]
    runner.drain()
    assert ours(graph, jane["id"]) == []


def test_a_connector_shaped_delete_removes_the_outlook_events(runner, graph, dime):
    """The body a Webhook connector posts (https://github.com/hbulens/dela README): PascalCase,
    `Resources`, local times without an offset, no field saying "deleted": the URL says it."""
    jane = onboard_jane(runner, graph, dime)
    dime.board.add_connector(publications_url(runner, "created"), crud=("created",))
    guid = dime.board.plan("Sick", START, END, ["R-JANE"])
    dime.board.flush()
    runner.drain()
    assert len(ours(graph, jane["id"])) == 1
    body = {
        "Id": 1212993,
        "AppointmentNo": "rVjMXrDY",
        "AppointmentGuid": guid,
        "StartDate": "2026-11-24T09:00:00",
        "EndDate": "2026-11-24T17:00:00",
        "Subject": "Sick",
        "Body": " - \r\n",
        "Resources": [{"ResourceNo": "R-JANE", "Email": "jane@contoso.com", "DisplayName": "Jane"}],
        "Task": {"Description": "Absence", "Job": {"JobNo": "J-1", "Description": "Absences"}},
        "Category": {"Name": "SICK", "Color": "#ff0000"},
    }
    answer = httpx.post(publications_url(runner, "deleted"), json=body)
    assert answer.status_code == 200, answer.text
    runner.drain()
    assert ours(graph, jane["id"]) == []


def test_a_stale_hook_whose_id_was_never_named_is_registered_again_and_reported(runner, graph, dime):
    """Its deliveries would be refused once the old key is gone: a new hook keeps them flowing, and
    the administrator is told to remove the old one in Dime.Scheduler (we cannot name it)."""
    dime.board.hook_id_in = "none"
    status, body = runner.request("PUT", "manage/dime/hooks")
    assert status == 502 and {e["error"] for e in body["errors"]} == {"HOOK_ID_UNKNOWN"}
    status, body = runner.request("PUT", "manage/dime/hooks")
    assert (status, body["kept"], body["replaced"]) == (200, 3, [])  # current key: kept, not duplicated
    dime.board.hook_id_in = "location"
    rotated = "rotated-publications-key-" + "7" * 20
    runner.services = build_services({**runner.env, "DIME_PUBLICATIONS_KEY": rotated}, clock=runner.clock)
    status, body = runner.request("PUT", "manage/dime/hooks")
    assert status == 502 and len(body["replaced"]) == 3
    assert {e["error"] for e in body["errors"]} == {"HOOK_NOT_REMOVED"}
    current = [h for h in dime.board.hooks.values() if h["notificationURL"].endswith("code=" + rotated)]
    assert len(current) == 3 and len(dime.board.hooks) == 6
