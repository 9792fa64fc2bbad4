"""Subscription creation, adoption and renewal against FakeGraph (real handshakes) and Azurite."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.adapters.graph_subscriptions import SubscriptionFailed
from shared.adapters.storage.subscription_rows import get_subscription, subscriptions_of
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.consent import Consent
from shared.core.outlook_to_dime.subscriptions import TokenBucket, format_expiry, parse_expiry
from shared.core.resources import Resource
from shared.names import LIFECYCLE_QUEUE, NOTIFICATIONS_QUEUE, RESYNC_QUEUE
from shared.usecases.outlook_to_dime.subscriptions import Pacer, renew_all, subscribe
from tests.conftest import drain_queue
from tests.e2e.live import admin, subscription_writes, wire
from tests.functions_server import FunctionsServer
from tests.host import call_function, fire_timer, run_queue

CONSENT = Consent.parse(True, "busy,oof", "normal")


@pytest.fixture
def server():
    with FunctionsServer() as running:
        yield running


@pytest.fixture
def services(azurite, graph, dime, monkeypatch, server):
    return wire(azurite, graph, dime, monkeypatch, server)


def resource_of(user: dict, enabled: bool = True) -> Resource:
    consent = replace(CONSENT, enabled=enabled)
    return Resource(object_id=user["id"], upn=user["userPrincipalName"], email=user["mail"], consent=consent)


def subscribe_all(services, resources: list[Resource]) -> list[Resource]:
    async def run() -> list[Resource]:
        return [await subscribe(services, r) for r in resources]

    return asyncio.run(run())


def seed(graph, services, users: list[dict], expiries: list[datetime], key: str | None = None) -> list[Resource]:
    """Live subscriptions in the fake and the tables at once (no handshakes; two table batches),
    created under `key` (default: the current CLIENT_STATE_SECRET)."""
    from shared.adapters.storage.subscription_rows import SUBSCRIPTION_PARTITION
    from shared.core.outlook_to_dime.webhook import subscription_fingerprint

    settings = services.settings
    made_with = subscription_fingerprint(
        key or settings.client_state_secrets[0], settings.notification_url, settings.lifecycle_notification_url
    )
    from shared.adapters.storage.tables import _resource_entity
    from shared.names import RESOURCES_TABLE, SUBSCRIPTIONS_TABLE
    from tests.fakes.graph import _Subscription

    resources, rows = [], []
    for user, expiry in zip(users, expiries, strict=True):
        sub_id = str(uuid.uuid4())
        stamp = format_expiry(expiry)
        with graph._lock:
            graph._subscriptions[sub_id] = _Subscription(
                {
                    "id": sub_id,
                    "resource": f"/users/{user['id']}/events",
                    "changeType": "created,updated,deleted",
                    "notificationUrl": services.settings.notification_url,
                    "lifecycleNotificationUrl": services.settings.lifecycle_notification_url,
                    "expirationDateTime": format_expiry(now() + timedelta(days=6)),
                    "clientState": "x",
                },
                user["id"],
                frozenset({"created", "updated", "deleted"}),
                True,
            )
        resource = replace(resource_of(user), subscription_id=sub_id, subscription_expiry=stamp)
        resources.append(resource)
        rows.append(
            {
                "PartitionKey": SUBSCRIPTION_PARTITION,
                "RowKey": sub_id,
                "MailboxId": user["id"],
                "Expiry": stamp,
                "MadeWith": made_with,
            }
        )
    services.store.table(RESOURCES_TABLE).submit_transaction([("create", _resource_entity(r)) for r in resources])
    services.store.table(SUBSCRIPTIONS_TABLE).submit_transaction([("create", row) for row in rows])
    return resources


def set_expiry(services, resource: Resource, when: datetime) -> Resource:
    moved = replace(resource, subscription_expiry=format_expiry(when))
    services.store.put_resource(moved)
    return moved


def now() -> datetime:
    return datetime.now(UTC)


def test_of_100_subscriptions_only_those_within_the_threshold_are_patched(graph, services):
    users = [graph.add_user(mail=f"u{i}@contoso.com") for i in range(100)]
    # Every third (34) expires within RENEW_WITHIN_MINUTES (1440); the others just after it.
    expiries = [now() + timedelta(minutes=(30 + i) if i % 3 == 0 else (1500 + i)) for i in range(100)]
    live = seed(graph, services, users, expiries)
    due = {r.object_id for i, r in enumerate(live) if i % 3 == 0}
    assert len(graph.subscriptions()) == 100 and len(due) == 34
    graph.reset_requests()

    fire_timer(function_app.renew_subscriptions, services)

    writes = subscription_writes(graph)
    assert writes == {"create": 0, "renew": len(due), "delete": 0, "list": 0, "reauthorize": 0}
    renewed_ids = {r.path.rsplit("/", 1)[-1] for r in graph.requests if r.method == "PATCH"}
    assert renewed_ids == {r.subscription_id for r in live if r.object_id in due}
    for resource in services.store.list_resources():
        expiry = parse_expiry(resource.subscription_expiry)
        if resource.object_id in due:
            assert expiry > now() + timedelta(days=6)
            assert get_subscription(services.store, resource.subscription_id).expiry == resource.subscription_expiry
        else:
            assert expiry < now() + timedelta(minutes=1700)
    assert drain_queue(services, RESYNC_QUEUE) == []


def test_renewal_404_creates_anew_and_requests_a_resync(graph, services):
    user = graph.add_user(mail="jane@contoso.com")
    (live,) = subscribe_all(services, [resource_of(user)])
    set_expiry(services, live, now() + timedelta(minutes=10))
    graph.remove_subscription(live.subscription_id)  # Graph dropped it silently
    graph.reset_requests()

    report = asyncio.run(renew_all(services))

    assert report.renewed == [user["id"]] and report.failed == {}
    assert subscription_writes(graph) == {"create": 1, "renew": 1, "delete": 0, "list": 0, "reauthorize": 0}
    (current,) = graph.subscriptions()
    assert current["id"] != live.subscription_id
    assert services.store.get_resource(user["id"]).subscription_id == current["id"]
    assert get_subscription(services.store, live.subscription_id) is None
    assert [r.id for r in subscriptions_of(services.store, user["id"])] == [current["id"]]
    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": user["id"], "reason": "subscriptionRecreated"}]


def test_missing_subscriptions_are_created_and_disabled_ones_deleted(graph, services):
    enabled, disabled, expired, quiet = (graph.add_user(mail=f"{n}@contoso.com") for n in ("a", "b", "c", "d"))
    services.store.put_resource(resource_of(enabled))
    live_disabled, live_expired = subscribe_all(services, [resource_of(disabled), resource_of(expired)])
    services.store.put_resource(replace(live_disabled, consent=replace(CONSENT, enabled=False)))
    set_expiry(services, live_expired, now() - timedelta(minutes=1))
    graph.remove_subscription(live_expired.subscription_id)  # Graph deletes expired subscriptions
    services.store.put_resource(resource_of(quiet, enabled=False))
    graph.reset_requests()

    report = asyncio.run(renew_all(services))

    assert sorted(report.created) == sorted([enabled["id"], expired["id"]])
    assert report.deleted == [disabled["id"]] and report.renewed == [] and report.failed == {}
    assert subscription_writes(graph) == {"create": 2, "renew": 0, "delete": 1, "list": 0, "reauthorize": 0}
    assert {s["resource"] for s in graph.subscriptions()} == {f"/users/{u['id']}/events" for u in (enabled, expired)}
    assert services.store.get_resource(disabled["id"]).subscription_id is None
    assert subscriptions_of(services.store, disabled["id"]) == []


def test_a_lost_create_answer_is_not_retried_by_the_sdk_and_the_stray_is_deleted_later(
    graph, services, server, monkeypatch
):
    """Graph answers no 409 to a duplicate: a create retried after a lost answer would leave two
    live subscriptions. The create goes out once even with the SDK's retries on; the one Graph kept
    is a stray: its first notification is dropped and it is deleted (https://learn.microsoft.com/graph/api/subscription-post-subscriptions)."""
    from shared.adapters.graph import GraphGateway
    from shared.usecases.outlook_to_dime import webhook
    from tests.fakes.credential import StaticTokenCredential
    from tests.host import run_queue

    services.graph = GraphGateway(services.settings.graph_base_url, StaticTokenCredential(), max_retries=3)
    user = graph.add_user(mail="jane@contoso.com")
    graph.lose_create_answers = 1

    with pytest.raises(SubscriptionFailed) as failed:
        subscribe_all(services, [resource_of(user)])

    assert failed.value.status == 504 and failed.value.code.transient  # try again later, visibly
    assert subscription_writes(graph)["create"] == 1  # not retried by the SDK
    (stray,) = graph.subscriptions()
    assert subscriptions_of(services.store, user["id"]) == []

    (live,) = subscribe_all(services, [resource_of(user)])  # the administrator tries again
    assert len(graph.subscriptions()) == 2  # Graph holds both: no 409

    monkeypatch.setattr(webhook, "STRAY_DELAY_SECONDS", None)
    graph.notify(user["id"], graph.create_event(user["id"])["id"], "created")
    run = run_queue(services, LIFECYCLE_QUEUE, function_app.apply_lifecycle)

    assert run.succeeded == 1
    assert [s["id"] for s in graph.subscriptions()] == [live.subscription_id] != [stray["id"]]
    assert [m["subscriptionId"] for m in drain_queue(services, NOTIFICATIONS_QUEUE)] == [live.subscription_id]


def test_renewal_recreates_on_404_only_and_shows_other_400s(graph, services):
    user = graph.add_user(mail="jane@contoso.com")
    (live,) = subscribe_all(services, [resource_of(user)])
    set_expiry(services, live, now() + timedelta(minutes=10))
    graph.fail_next(1, status=400, retry_after=None, path_contains=live.subscription_id, code="InvalidRequest")
    graph.reset_requests()

    report = asyncio.run(renew_all(services))

    assert list(report.failed) == [user["id"]] and "400" in report.failed[user["id"]]
    assert subscription_writes(graph) == {"create": 0, "renew": 1, "delete": 0, "list": 0, "reauthorize": 0}
    assert [s["id"] for s in graph.subscriptions()] == [live.subscription_id]  # not recreated
    [failed] = transaction_store(services).failed()
    assert failed.mailbox_id == user["id"] and failed.error_code == "GRAPH_REJECTED"


def test_a_400_naming_the_lifetime_cap_is_retried_with_fewer_minutes(graph, services):
    user = graph.add_user(mail="jane@contoso.com")
    (live,) = subscribe_all(services, [resource_of(user)])
    set_expiry(services, live, now() + timedelta(minutes=10))
    graph.max_subscription_minutes = 4230  # this service caps lower than the docs say
    graph.reset_requests()

    report = asyncio.run(renew_all(services))

    assert report.renewed == [user["id"]] and report.failed == {}
    assert subscription_writes(graph)["renew"] == 2 and subscription_writes(graph)["create"] == 0
    expiry = parse_expiry(services.store.get_resource(user["id"]).subscription_expiry)
    assert now() + timedelta(minutes=4100) < expiry <= now() + timedelta(minutes=4230)
    other = graph.add_user(mail="john@contoso.com")
    (created,) = subscribe_all(services, [resource_of(other)])  # the same on create
    assert parse_expiry(created.subscription_expiry) <= now() + timedelta(minutes=4230)


def test_subscription_count_reached_is_permanent_and_visible(graph, services):
    user = graph.add_user(mail="jane@contoso.com")
    graph.subscriptions_per_mailbox = 0  # other apps hold the mailbox's 1,000
    services.store.put_resource(resource_of(user))

    for _ in range(2):  # two timer runs: one visible row, reopened
        report = asyncio.run(renew_all(services))
        assert "SubscriptionCountReached" in report.failed[user["id"]]
    [failed] = transaction_store(services).failed()
    assert failed.error_code == "GRAPH_REJECTED" and "SubscriptionCountReached" in failed.message
    assert failed.attempts == 2 and failed.next_attempt_at is None
    assert subscription_writes(graph)["create"] == 2  # once per run: the SDK did not retry the 429

    status, body = admin("PUT", user["id"])
    assert status == 502 and "SubscriptionCountReached" in body["error"]


def test_one_failing_mailbox_does_not_stop_the_others(graph, services):
    users = [graph.add_user(mail=f"u{i}@contoso.com") for i in range(3)]
    live = subscribe_all(services, [resource_of(u) for u in users])
    for resource in live:
        set_expiry(services, resource, now() + timedelta(minutes=5))
    graph.fail_next(1, status=503, path_contains=live[1].subscription_id)

    report = asyncio.run(renew_all(services))

    assert set(report.renewed) == {users[0]["id"], users[2]["id"]}
    assert list(report.failed) == [users[1]["id"]] and "503" in report.failed[users[1]["id"]]


def test_renewal_is_paced_under_the_write_limit(graph, services):
    users = [graph.add_user(mail=f"u{i}@contoso.com") for i in range(25)]
    seed(graph, services, users, [now() + timedelta(minutes=5)] * 25)
    clock = [1000.0]
    write_times: list[float] = []

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    pacer = Pacer(TokenBucket.for_limit(10, 20.0), monotonic=lambda: clock[0], sleep=sleep)
    original = pacer.write

    async def recording_write() -> None:
        await original()
        write_times.append(clock[0])

    pacer.write = recording_write  # type: ignore[method-assign]
    report = asyncio.run(renew_all(services, pacer))

    assert len(report.renewed) == 25 and report.writes == 25 == subscription_writes(graph)["renew"]
    for start in write_times:
        assert sum(1 for t in write_times if start <= t < start + 20.0) <= 10


def test_after_a_key_rotation_renewal_recreates_subscriptions_under_the_new_key(graph, services):
    """PATCH cannot change a clientState: subscriptions made under the previous key are recreated."""
    from shared.adapters.storage.subscription_rows import get_subscription
    from shared.usecases.outlook_to_dime.subscriptions import current_fingerprint

    users = [graph.add_user(mail=f"rotate{i}@contoso.com") for i in range(3)]
    old = seed(graph, services, users[:2], [now() + timedelta(days=5)] * 2, key="the-previous-secret-0123456789")
    seed_current = seed(graph, services, users[2:], [now() + timedelta(days=5)])  # not due, current key
    graph.reset_requests()

    fire_timer(function_app.renew_subscriptions, services)

    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in graph.requests if "/subscriptions" in r.path]
    assert sorted(m for m, _ in methods) == ["DELETE", "DELETE", "POST", "POST"]
    current = current_fingerprint(services)
    for resource in old:
        fresh = services.store.get_resource(resource.object_id)
        assert fresh.subscription_id != resource.subscription_id
        assert get_subscription(services.store, fresh.subscription_id).made_with == current
    kept = services.store.get_resource(seed_current[0].object_id)
    assert kept.subscription_id == seed_current[0].subscription_id


def test_after_a_function_key_rotation_renewal_moves_subscriptions_to_the_new_urls(graph, services, server):
    """The webhook URLs carry the function key; a PATCH cannot change the lifecycle URL, so the
    renewal timer recreates subscriptions made with other URLs (docs/deploy.md "Function keys")."""
    users = [graph.add_user(mail=f"key{i}@contoso.com") for i in range(2)]
    old = seed(graph, services, users, [now() + timedelta(days=5)] * 2)
    new_key = "the-new-function-key"
    server.key = new_key
    services.settings = replace(
        services.settings,
        notification_url=server.url("notifications"),
        lifecycle_notification_url=server.url("lifecycle"),
    )

    fire_timer(function_app.renew_subscriptions, services)

    live = graph.subscriptions()
    assert len(live) == 2 and {s["id"] for s in live}.isdisjoint({r.subscription_id for r in old})
    assert all(
        f"code={new_key}" in s["notificationUrl"] and f"code={new_key}" in s["lifecycleNotificationUrl"] for s in live
    )
    assert sorted(m["reason"] for m in drain_queue(services, RESYNC_QUEUE)) == ["subscriptionRecreated"] * 2


def test_the_renewal_timer_hands_out_only_the_mailboxes_due_and_writes_nothing_itself(graph, services):
    """Fanned out (usecases/fanout.py): the timer reads the directory and the subscription rows
    (two partition queries), and sends the 34 due of 100 mailboxes in two messages."""
    import json

    from shared.names import MAILBOX_CHUNKS_QUEUE

    users = [graph.add_user(mail=f"u{i}@contoso.com") for i in range(100)]
    expiries = [now() + timedelta(minutes=(30 + i) if i % 3 == 0 else (1500 + i)) for i in range(100)]
    live = seed(graph, services, users, expiries)
    due = {r.object_id for i, r in enumerate(live) if i % 3 == 0}
    graph.reset_requests()

    call_function(function_app.renew_subscriptions, TimerRequest(past_due=False))

    client = services.queues.client(MAILBOX_CHUNKS_QUEUE)
    messages = [json.loads(m.content) for m in client.peek_messages(max_messages=32)]
    assert len(messages) == 2 and {i for m in messages for i in m["mailboxIds"]} == due
    assert subscription_writes(graph) == {"create": 0, "renew": 0, "delete": 0, "list": 0, "reauthorize": 0}

    run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)
    store = SyncStateStore(services.store)
    assert {store.run(m, "renewal")["Outcome"] for m in due} == {"renewed"}  # each mailbox's own record
    assert store.run(live[1].object_id, "renewal") is None  # not due: not handed out


def test_renewal_messages_beyond_five_become_visible_a_window_later(graph, services):
    """Instances together stay under Graph's 500 subscription writes per 20 s: 5 messages of 25
    mailboxes (at most 2 writes each) become visible per 20-second window."""
    from shared.names import MAILBOX_CHUNKS_QUEUE

    users = [graph.add_user(mail=f"due{i}@contoso.com") for i in range(130)]
    seed(graph, services, users[:100], [now() + timedelta(minutes=30)] * 100)
    seed(graph, services, users[100:], [now() + timedelta(minutes=30)] * 30)

    call_function(function_app.renew_subscriptions, TimerRequest(past_due=False))

    client = services.queues.client(MAILBOX_CHUNKS_QUEUE)
    assert len(client.peek_messages(max_messages=32)) == 5  # the sixth waits 20 s
    assert services.queues.depth(MAILBOX_CHUNKS_QUEUE) == 6
