"""Lifecycle notifications: FakeGraph posts to the real /api/lifecycle, the queue worker acts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

import function_app
from shared.adapters.storage.subscription_rows import get_subscription, save_subscription
from shared.core.outlook_to_dime.subscriptions import parse_expiry
from shared.core.outlook_to_dime.webhook import client_state_for
from shared.names import LIFECYCLE_QUEUE, RESYNC_QUEUE
from shared.usecases.outlook_to_dime import lifecycle
from shared.usecases.outlook_to_dime.subscriptions import request_resync
from tests.conftest import CLIENT_STATE_SECRET, TENANT_ID, drain_queue
from tests.e2e.live import admin, run_lifecycle, subscription_writes, wire
from tests.functions_server import FunctionsServer
from tests.host import run_queue


@pytest.fixture
def server():
    with FunctionsServer() as running:
        yield running


@pytest.fixture
def services(azurite, graph, dime, monkeypatch, server):
    return wire(azurite, graph, dime, monkeypatch, server)


@pytest.fixture
def onboarded(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    status, body = admin("PUT", person["id"])
    assert status == 201
    drain_queue(services, RESYNC_QUEUE)
    graph.reset_requests()
    return person, body["subscription"]["id"]


def renewed_long_ago(services, sub_id: str) -> None:
    """The subscription row as if its last create or renewal was an hour ago (past the debounce)."""
    row = get_subscription(services.store, sub_id)
    hour_ago = (services.clock() - timedelta(hours=1)).isoformat()
    save_subscription(services.store, replace(row, renewed_at=hour_ago))


def test_reauthorization_required_renews_by_patch_only(graph, services, onboarded):
    person, sub_id = onboarded
    renewed_long_ago(services, sub_id)
    before = services.store.get_resource(person["id"]).subscription_expiry

    assert graph.send_lifecycle(sub_id, "reauthorizationRequired") == 202
    run_lifecycle(services)

    assert subscription_writes(graph) == {"create": 0, "renew": 1, "delete": 0, "list": 0, "reauthorize": 0}
    assert graph.subscription_reauthorizations(sub_id) == 0
    resource = services.store.get_resource(person["id"])
    assert resource.subscription_id == sub_id
    assert parse_expiry(resource.subscription_expiry) >= parse_expiry(before)
    assert get_subscription(services.store, sub_id).expiry == resource.subscription_expiry
    assert drain_queue(services, RESYNC_QUEUE) == []


def test_subscription_removed_creates_it_again_then_requests_a_resync(graph, services, onboarded):
    person, sub_id = onboarded

    assert graph.send_lifecycle(sub_id, "subscriptionRemoved") == 202
    run_lifecycle(services)

    (current,) = graph.subscriptions()
    assert current["id"] != sub_id and current["resource"] == f"/users/{person['id']}/events"
    assert subscription_writes(graph)["create"] == 1
    assert services.store.get_resource(person["id"]).subscription_id == current["id"]
    assert get_subscription(services.store, sub_id) is None
    assert get_subscription(services.store, current["id"]).mailbox_id == person["id"]
    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": person["id"], "reason": "subscriptionRemoved"}]


def test_missed_requests_a_resync_and_writes_nothing(graph, services, onboarded):
    person, sub_id = onboarded

    assert graph.send_lifecycle(sub_id, "missed") == 202
    run_lifecycle(services)

    assert subscription_writes(graph) == {"create": 0, "renew": 0, "delete": 0, "list": 0, "reauthorize": 0}
    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": person["id"], "reason": "missed"}]
    assert [s["id"] for s in graph.subscriptions()] == [sub_id]


def test_a_lifecycle_item_without_resource_is_verified_through_the_table(graph, services, onboarded):
    person, sub_id = onboarded
    item = {
        "subscriptionId": sub_id,
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00+00:00",
        "tenantId": TENANT_ID,
        "clientState": client_state_for(person["id"], CLIENT_STATE_SECRET),
        "lifecycleEvent": "missed",
    }
    forged = {**item, "subscriptionId": "00000000-0000-4000-8000-000000000000"}
    body = json.dumps({"value": [item, forged]}).encode()

    response = function_app.lifecycle(function_app.func.HttpRequest("POST", "/api/lifecycle", body=body))

    assert response.status_code == 202
    assert drain_queue(services, LIFECYCLE_QUEUE) == [
        {
            "mailboxId": person["id"],
            "subscriptionId": sub_id,
            "lifecycleEvent": "missed",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00+00:00",
        }
    ]


def test_lifecycle_events_of_a_disabled_mailbox_are_dropped(graph, services, onboarded):
    person, sub_id = onboarded
    # Disabled behind our back (the subscription is still live at Graph, as after a failed DELETE).
    resource = services.store.get_resource(person["id"])
    services.store.put_resource(replace(resource, consent=replace(resource.consent, enabled=False)))

    graph.send_lifecycle(sub_id, "missed")
    graph.send_lifecycle(sub_id, "reauthorizationRequired")
    run_lifecycle(services)

    assert drain_queue(services, RESYNC_QUEUE) == []
    assert subscription_writes(graph)["delete"] == 1 and graph.subscriptions() == []  # unwanted: stopped
    assert subscription_writes(graph)["renew"] == 0


def lifecycle_post(person_id: str, subscription_id: str, event: str, copies: int = 1) -> int:
    """A lifecycle POST as Graph sends it: no resource, the clientState of `person_id`."""
    item = {
        "subscriptionId": subscription_id,
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00+00:00",
        "tenantId": TENANT_ID,
        "clientState": client_state_for(person_id, CLIENT_STATE_SECRET),
        "lifecycleEvent": event,
    }
    body = json.dumps({"value": [item] * copies}).encode()
    return function_app.lifecycle(function_app.func.HttpRequest("POST", "/api/lifecycle", body=body)).status_code


def test_a_lifecycle_item_acts_only_when_its_subscription_is_the_proven_mailboxs(graph, services, onboarded):
    _, sub_id = onboarded
    other = graph.add_user(mail="john@contoso.com")
    _, body = admin("PUT", other["id"])
    drain_queue(services, RESYNC_QUEUE)

    # John's clientState with Jane's subscription id: not John's subscription, nothing happens,
    # and Jane's subscription is not treated as a stray either.
    assert lifecycle_post(other["id"], sub_id, "subscriptionRemoved") == 202
    assert drain_queue(services, LIFECYCLE_QUEUE) == []
    run_lifecycle(services)
    assert {s["id"] for s in graph.subscriptions()} == {sub_id, body["subscription"]["id"]}


def test_a_flood_of_missed_is_one_resync(graph, services, onboarded):
    person, sub_id = onboarded
    assert lifecycle_post(person["id"], sub_id, "missed", copies=500) == 202
    assert lifecycle_post(person["id"], sub_id, "missed", copies=500) == 202  # another POST

    run_lifecycle(services)

    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": person["id"], "reason": "missed"}]


def test_a_missed_after_the_resync_started_queues_another_one(graph, services, onboarded):
    """A resync still pending covers a `missed`; one that has started may have read the calendar
    before the lost notifications, so a `missed` now queues another (debounced by time before:
    a second `missed` within a minute was dropped although its run had already read)."""
    person, sub_id = onboarded
    expected = {"mailboxId": person["id"], "reason": "missed"}

    assert lifecycle_post(person["id"], sub_id, "missed") == 202
    run_lifecycle(services)
    assert lifecycle_post(person["id"], sub_id, "missed") == 202  # the first resync is still pending
    run_lifecycle(services)
    assert queued_resyncs(services) == [expected]

    run = run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)  # the worker starts it
    assert run.succeeded == 1 and run.failed == 0, run.errors
    assert lifecycle_post(person["id"], sub_id, "missed") == 202
    run_lifecycle(services)
    assert lifecycle_post(person["id"], sub_id, "missed") == 202  # pending again: covered
    run_lifecycle(services)
    assert drain_queue(services, RESYNC_QUEUE) == [expected]


def test_a_resync_whose_message_could_not_be_sent_is_claimed_again(graph, services, onboarded, monkeypatch):
    person, _ = onboarded
    sent = services.queues.send

    def broken(queue_name, *args, **kwargs):
        if queue_name == RESYNC_QUEUE:
            raise ConnectionError("queue storage is down")
        return sent(queue_name, *args, **kwargs)

    monkeypatch.setattr(services.queues, "send", broken)
    with pytest.raises(ConnectionError):
        request_resync(services, person["id"], "missed", debounce=True)
    monkeypatch.setattr(services.queues, "send", sent)
    assert request_resync(services, person["id"], "missed", debounce=True) is True
    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": person["id"], "reason": "missed"}]


def queued_resyncs(services) -> list[dict]:
    """The resync queue's messages, left in place (peeked)."""
    return [json.loads(m.content) for m in services.queues.client(RESYNC_QUEUE).peek_messages(max_messages=32)]


def graph_reads(graph, sub_id: str) -> int:
    return len(
        [r for r in graph.requests if r.method == "GET" and r.path.rstrip("/").endswith(f"/subscriptions/{sub_id}")]
    )


def test_a_forged_subscription_removed_creates_nothing(graph, services, onboarded, monkeypatch):
    """Graph still holds the subscription (GET /subscriptions/{id} answers 200, not expired): a
    removal it does not confirm creates nothing, is looked at once more later, then let be."""
    monkeypatch.setattr(lifecycle, "RECHECK_SECONDS", None)  # minutes in production
    person, sub_id = onboarded

    assert lifecycle_post(person["id"], sub_id, "subscriptionRemoved") == 202  # forged: Graph removed nothing
    run_lifecycle(services)

    assert subscription_writes(graph) == {"create": 0, "renew": 0, "delete": 0, "list": 0, "reauthorize": 0}
    assert graph_reads(graph, sub_id) == 2  # confirmed twice, a recheck included
    assert [s["id"] for s in graph.subscriptions()] == [sub_id]
    assert services.store.get_resource(person["id"]).subscription_id == sub_id
    assert get_subscription(services.store, sub_id) is not None
    assert drain_queue(services, RESYNC_QUEUE) == [] and drain_queue(services, LIFECYCLE_QUEUE) == []


def test_a_removal_graph_reads_late_is_confirmed_by_the_recheck(graph, services, onboarded, monkeypatch):
    """Graph's GET lagging behind its own removal (unverified): the recheck sees the 404."""
    monkeypatch.setattr(lifecycle, "RECHECK_SECONDS", None)
    person, sub_id = onboarded
    graph.removed_subscription_reads = 1

    assert graph.send_lifecycle(sub_id, "subscriptionRemoved") == 202
    run_lifecycle(services)

    (current,) = graph.subscriptions()
    assert current["id"] != sub_id and subscription_writes(graph)["create"] == 1
    assert services.store.get_resource(person["id"]).subscription_id == current["id"]
    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": person["id"], "reason": "subscriptionRemoved"}]


def test_reauthorization_is_renewed_once_per_window_and_only_what_graph_holds(graph, services, onboarded):
    """A second reauthorizationRequired minutes after a renewal costs nothing; one for a
    subscription Graph no longer has (404) creates it anew instead of renewing."""
    person, sub_id = onboarded
    renewed_long_ago(services, sub_id)

    for _ in range(3):  # three POSTs: one PATCH
        assert lifecycle_post(person["id"], sub_id, "reauthorizationRequired") == 202
        run_lifecycle(services)
    assert subscription_writes(graph)["renew"] == 1
    assert graph_reads(graph, sub_id) == 1

    renewed_long_ago(services, sub_id)
    graph.remove_subscription(sub_id)  # gone at Graph, without a word
    graph.reset_requests()
    assert lifecycle_post(person["id"], sub_id, "reauthorizationRequired") == 202
    run_lifecycle(services)
    assert subscription_writes(graph) == {"create": 1, "renew": 0, "delete": 0, "list": 0, "reauthorize": 0}
    (current,) = graph.subscriptions()
    assert services.store.get_resource(person["id"]).subscription_id == current["id"]
    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": person["id"], "reason": "subscriptionRecreated"}]


def test_a_reauthorization_for_a_subscription_graph_holds_elsewhere_renews_nothing(graph, services, onboarded):
    """Our row says the id is this mailbox's, Graph says it watches another resource: no PATCH."""
    person, sub_id = onboarded
    renewed_long_ago(services, sub_id)
    other = graph.add_user(mail="john@contoso.com")
    graph._subscriptions[sub_id].json["resource"] = f"/users/{other['id']}/events"

    assert lifecycle_post(person["id"], sub_id, "reauthorizationRequired") == 202
    run_lifecycle(services)
    assert subscription_writes(graph) == {"create": 0, "renew": 0, "delete": 0, "list": 0, "reauthorize": 0}
