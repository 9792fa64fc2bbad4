"""Subscription creation, adoption and renewal against FakeGraph (real handshakes) and Azurite."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.adapters.subscription_rows import delete_subscription_row, get_subscription, subscriptions_of
from shared.core.consent import Consent
from shared.core.resources import Resource
from shared.core.subscriptions import TokenBucket, format_expiry, parse_expiry
from shared.names import RESYNC_QUEUE
from shared.usecases.subscriptions import Pacer, renew_all, subscribe
from tests.conftest import drain_queue
from tests.e2e.live import subscription_writes, wire
from tests.functions_server import FunctionsServer
from tests.host import call_function

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
    from shared.adapters.subscription_rows import SUBSCRIPTION_PARTITION
    from shared.core.webhook import subscription_fingerprint

    settings = services.settings
    made_with = subscription_fingerprint(
        key or settings.client_state_secrets[0], settings.notification_url, settings.lifecycle_notification_url
    )
    from shared.adapters.tables import _resource_entity
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

    call_function(function_app.renew_subscriptions, TimerRequest(past_due=False))

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


def test_a_409_adopts_the_subscription_the_table_knows_without_listing(graph, services):
    user = graph.add_user(mail="jane@contoso.com")
    (live,) = subscribe_all(services, [resource_of(user)])
    services.store.put_resource(replace(live, subscription_id=None, subscription_expiry=None))  # a lost write
    graph.reset_requests()

    (adopted,) = subscribe_all(services, [services.store.get_resource(user["id"])])

    assert adopted.subscription_id == live.subscription_id
    assert subscription_writes(graph) == {"create": 1, "renew": 1, "delete": 0, "list": 0, "reauthorize": 0}
    assert len(graph.subscriptions()) == 1
    assert services.store.get_resource(user["id"]).subscription_id == live.subscription_id


def test_a_409_unknown_to_the_table_lists_once_and_adopts(graph, services):
    user = graph.add_user(mail="jane@contoso.com")
    (live,) = subscribe_all(services, [resource_of(user)])
    delete_subscription_row(services.store, live.subscription_id)
    fresh = resource_of(user)
    graph.reset_requests()

    (adopted,) = subscribe_all(services, [fresh])

    assert adopted.subscription_id == live.subscription_id
    assert subscription_writes(graph) == {"create": 1, "renew": 1, "delete": 0, "list": 1, "reauthorize": 0}
    assert get_subscription(services.store, live.subscription_id).mailbox_id == user["id"]


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
    from shared.adapters.subscription_rows import get_subscription
    from shared.usecases.subscriptions import current_fingerprint

    users = [graph.add_user(mail=f"rotate{i}@contoso.com") for i in range(3)]
    old = seed(graph, services, users[:2], [now() + timedelta(days=5)] * 2, key="the-previous-secret-0123456789")
    seed_current = seed(graph, services, users[2:], [now() + timedelta(days=5)])  # not due, current key
    graph.reset_requests()

    call_function(function_app.renew_subscriptions, TimerRequest(past_due=False))

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

    call_function(function_app.renew_subscriptions, TimerRequest(past_due=False))

    live = graph.subscriptions()
    assert len(live) == 2 and {s["id"] for s in live}.isdisjoint({r.subscription_id for r in old})
    assert all(
        f"code={new_key}" in s["notificationUrl"] and f"code={new_key}" in s["lifecycleNotificationUrl"] for s in live
    )
    assert sorted(m["reason"] for m in drain_queue(services, RESYNC_QUEUE)) == ["subscriptionRecreated"] * 2
