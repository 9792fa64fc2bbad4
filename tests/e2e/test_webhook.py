"""The notification endpoint, called as the host calls it, with real Azurite queues."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid

import azure.functions as func
import pytest

import function_app
from shared.adapters.storage import subscription_rows
from shared.adapters.storage.subscription_rows import SubscriptionRow, save_subscription
from shared.core.outlook_to_dime.webhook import MAX_ITEMS, STRAY_EVENT, client_state_for
from shared.names import LIFECYCLE_QUEUE, NOTIFICATIONS_QUEUE
from shared.usecases.outlook_to_dime import webhook
from shared.usecases.outlook_to_dime.lifecycle import handle_lifecycle
from tests.conftest import drain_queue, notification_item, raw_queue_bodies, subscription_id_of
from tests.storage_counter import StorageCounter

MAILBOX = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
OTHER = "ffffffff-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def subscribed(services):
    """The app holds MAILBOX's subscription (the one notification_item() names)."""
    save_subscription(services.store, SubscriptionRow(subscription_id_of(MAILBOX), MAILBOX, "2026-11-29T00:00:00Z"))


def call(body: bytes, params: dict | None = None, route: str = "notifications") -> func.HttpResponse:
    function = function_app.notifications if route == "notifications" else function_app.lifecycle
    return function(func.HttpRequest("POST", f"/api/{route}", params=params or {}, body=body))


def test_validation_token_comes_back_byte_for_byte_as_plain_text():
    token = "Validation: Testing client application reachability <script>&amp; 🙂 +/=%20"
    response = call(b"", {"validationToken": token})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_body() == token.encode("utf-8")


def test_validation_needs_no_settings(monkeypatch):
    """Graph validates the URL before the app may be fully configured: no settings are read."""

    def fail():
        raise AssertionError("services must not be built for the handshake")

    monkeypatch.setattr(function_app, "services", fail)
    assert call(b"", {"validationToken": "abc"}, route="lifecycle").get_body() == b"abc"


def test_ten_valid_notifications_make_one_message(services):
    """One put per POST: the changes travel packed, the worker folds and applies them."""
    items = [notification_item(MAILBOX, f"event-{i}", "updated", f"ck{i}") for i in range(10)]
    response = call(json.dumps({"value": items}).encode())

    assert response.status_code == 202
    stored = raw_queue_bodies(services, NOTIFICATIONS_QUEUE)  # base64, as host.json expects
    assert len(stored) == 1
    changes = json.loads(stored[0])["changes"]
    assert sorted(c["eventId"] for c in changes) == sorted(f"event-{i}" for i in range(10))
    assert {c["mailboxId"] for c in changes} == {MAILBOX}
    assert {c["changeKey"] for c in changes} == {f"ck{i}" for i in range(10)}


def test_one_notification_stays_a_plain_message(services):
    response = call(json.dumps({"value": [notification_item(MAILBOX, "event-1", "updated", "ck1")]}).encode())

    assert response.status_code == 202
    (stored,) = raw_queue_bodies(services, NOTIFICATIONS_QUEUE)
    assert json.loads(stored)["eventId"] == "event-1"


def test_forged_client_state_queues_nothing(services):
    item = notification_item(MAILBOX, "event-1")
    item["clientState"] = client_state_for(MAILBOX, "a-different-secret-entirely")
    response = call(json.dumps({"value": [item]}).encode())
    assert response.status_code == 202
    assert b"clientState" not in response.get_body()  # the answer does not say which check failed
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_foreign_tenant_queues_nothing(services):
    item = notification_item(MAILBOX, "event-1")
    item["tenantId"] = "99999999-9999-4999-8999-999999999999"
    assert call(json.dumps({"value": [item]}).encode()).status_code == 202
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_client_state_of_another_mailbox_is_refused(services):
    item = notification_item(MAILBOX, "event-1")
    item["clientState"] = client_state_for(
        "ffffffff-0000-4000-8000-000000000000", "test-client-state-secret-0123456789"
    )
    call(json.dumps({"value": [item]}).encode())
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_valid_items_are_queued_and_invalid_ones_dropped(services):
    good = notification_item(MAILBOX, "good")
    bad = notification_item(MAILBOX, "bad")
    bad["tenantId"] = "other"
    assert call(json.dumps({"value": [bad, good, "junk", None, 42]}).encode()).status_code == 202
    assert [m["eventId"] for m in drain_queue(services, NOTIFICATIONS_QUEUE)] == ["good"]


def test_malformed_json_is_400_with_a_reason(services):
    response = call(b'{"value": [')
    assert response.status_code == 400
    assert b"JSON" in response.get_body()


def test_body_without_value_list_is_400(services):
    for body in (b"{}", b'{"value": {}}', b"[]", b'"value"'):
        response = call(body)
        assert response.status_code == 400, body
        assert b"value" in response.get_body()


def test_two_mebibyte_body_is_413(services):
    response = call(b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert response.status_code == 413
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def lifecycle_item(services, mailbox: str = MAILBOX, event: str = "missed", subscription_id: str = "") -> dict:
    """As Graph sends it: no resource, no resourceData (https://learn.microsoft.com/graph/change-notifications-lifecycle-events)."""
    return {
        "subscriptionId": subscription_id or subscription_id_of(mailbox),
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
        "tenantId": services.settings.graph_tenant_id,
        "clientState": client_state_for(mailbox, "test-client-state-secret-0123456789"),
        "lifecycleEvent": event,
    }


def test_lifecycle_items_go_to_the_lifecycle_queue(services):
    item = lifecycle_item(services)
    assert call(json.dumps({"value": [item]}).encode(), route="lifecycle").status_code == 202
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []
    [message] = drain_queue(services, LIFECYCLE_QUEUE)
    assert (message["lifecycleEvent"], message["mailboxId"]) == ("missed", MAILBOX)


def test_queue_failure_answers_503_so_graph_retries(services, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("storage is down")

    monkeypatch.setattr(services.queues, "send", broken)
    response = call(json.dumps({"value": [notification_item(MAILBOX, "e")]}).encode())
    assert response.status_code == 503


def test_storage_failure_while_verifying_answers_503(services, monkeypatch):
    """Reading the subscription row failed: Graph must deliver again, nothing is dropped."""

    def broken(*args, **kwargs):
        raise ConnectionError("table storage is down")

    monkeypatch.setattr(subscription_rows, "get_subscription", broken)
    response = call(json.dumps({"value": [notification_item(MAILBOX, "e")]}).encode())
    assert response.status_code == 503
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_a_notification_never_onboards_a_mailbox(services, graph):
    """A valid clientState for a mailbox the app holds no subscription for: dropped, nothing created."""
    stranger = graph.add_user(mail="stranger@contoso.com")
    response = call(json.dumps({"value": [notification_item(stranger["id"], "e1")]}).encode())
    assert response.status_code == 202
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []
    assert services.store.get_resource(stranger["id"]) is None


def test_items_of_foreign_or_unknown_subscriptions_are_dropped_and_unknown_ones_deleted_later(services, monkeypatch):
    monkeypatch.setattr(webhook, "STRAY_DELAY_SECONDS", None)  # paced by a delay in production
    item = notification_item(OTHER, "e1")
    item["subscriptionId"] = subscription_id_of(MAILBOX)  # ours, but for MAILBOX, not OTHER
    stray = lifecycle_item(services, MAILBOX, "missed", subscription_id="5e1d0c3b-0000-4000-8000-000000000009")
    assert call(json.dumps({"value": [item, item, stray, stray]}).encode()).status_code == 202
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []
    cleanups = drain_queue(services, LIFECYCLE_QUEUE)
    # only the unknown one: MAILBOX's own subscription is never deleted because of OTHER's item
    assert [(m["lifecycleEvent"], m["subscriptionId"], m["mailboxId"]) for m in cleanups] == [
        (STRAY_EVENT, "5e1d0c3b-0000-4000-8000-000000000009", MAILBOX)
    ]


def test_forged_items_touch_no_table_and_log_one_line(services, monkeypatch, caplog):
    reads = []
    monkeypatch.setattr(services.store, "table", lambda name: reads.append(name))
    forged = notification_item(MAILBOX, "e")
    forged["clientState"] = client_state_for(MAILBOX, "not-the-secret-not-the-secret-0000")
    foreign = dict(forged, tenantId="99999999-9999-4999-8999-999999999999")
    with caplog.at_level(logging.INFO, logger="shared.usecases.outlook_to_dime.webhook"):
        response = call(json.dumps({"value": [forged] * 600 + [foreign] * 300 + ["junk"] * 99}).encode())
    assert response.status_code == 202
    assert reads == []
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.usecases.outlook_to_dime.webhook"]
    assert len(lines) == 1
    assert "bad clientState 600" in lines[0] and "foreign or missing tenant 300" in lines[0]


def test_more_items_than_graph_ever_sends_is_413(services):
    items = [notification_item(MAILBOX, f"e{i}") for i in range(MAX_ITEMS + 1)]
    response = call(json.dumps({"value": items}).encode())
    assert response.status_code == 413
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


@pytest.mark.parametrize(
    "spelling",
    ["Users/{m}/Events/{e}", "users/{m}@{t}/events/{e}", "Users('{m}')/Events('{e}')"],
)
def test_every_documented_resource_spelling_is_queued(services, spelling):
    item = notification_item(MAILBOX, "AAMkAD=")
    item["resource"] = spelling.format(m=MAILBOX, e="AAMkAD=", t=services.settings.graph_tenant_id)
    assert call(json.dumps({"value": [item]}).encode()).status_code == 202
    assert [(m["mailboxId"], m["eventId"]) for m in drain_queue(services, NOTIFICATIONS_QUEUE)] == [
        (MAILBOX, "AAMkAD=")
    ]


def random_subscription_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def test_a_thousand_unknown_subscription_ids_of_a_mailbox_cost_two_reads_and_two_deletes(services, graph, monkeypatch):
    """Hostile caller with the function key and one mailbox's clientState (both ride on every
    notification): each POST carries 1,000 items with random subscription ids. Only the first two
    distinct ids of the mailbox are looked up; the rest are dropped unread, and across POSTs the
    mailbox's unknown ids schedule at most two stray deletions (today: 1,015 table reads and ten
    Graph deletes per POST)."""
    monkeypatch.setattr(webhook, "STRAY_DELAY_SECONDS", None)
    services.store.create_tables()  # provisioning (tables and queues) is not the figure
    services.queues.create_queues()
    counter = StorageCounter.install()
    reads, statuses = [], []
    for post in range(3):
        items = []
        for n, subscription_id in enumerate(random_subscription_ids(1000, seed=post)):
            item = notification_item(MAILBOX, f"e{n}")
            item["subscriptionId"] = subscription_id
            items.append(item)
        counter.reset()
        statuses.append(call(json.dumps({"value": items}).encode()).status_code)
        reads.append(counter.by_service().get("table", 0))  # queue creates would count here; none now

    assert statuses == [202, 202, 202]
    assert max(reads) <= 2, reads
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []
    strays = [m for m in drain_queue(services, LIFECYCLE_QUEUE) if m["lifecycleEvent"] == STRAY_EVENT]
    assert len(strays) <= 2, len(strays)
    graph.reset_requests()
    for message in strays:
        asyncio.run(handle_lifecycle(message, services))
    assert len([r for r in graph.requests if r.method == "DELETE"]) <= 2


def test_items_beyond_the_first_two_subscription_ids_of_a_mailbox_are_dropped_in_one_line(services, caplog):
    """Ours first: the held subscription's items pass; a third and later id are dropped unread."""
    held = notification_item(MAILBOX, "e-held")
    others = []
    for n, subscription_id in enumerate(random_subscription_ids(5, seed=7)):
        item = notification_item(MAILBOX, f"e{n}")
        item["subscriptionId"] = subscription_id
        others.append(item)
    with caplog.at_level(logging.INFO, logger="shared.usecases.outlook_to_dime.webhook"):
        response = call(json.dumps({"value": [held, *others]}).encode())
    assert response.status_code == 202
    assert [m["eventId"] for m in drain_queue(services, NOTIFICATIONS_QUEUE)] == ["e-held"]
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.usecases.outlook_to_dime.webhook"]
    assert len(lines) == 1
    assert "subscription beyond the first 2 of its mailbox 4" in lines[0], lines[0]
    assert "subscription unknown to the table 1" in lines[0], lines[0]
