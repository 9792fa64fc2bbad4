"""The webhook's cache of subscription owners (`SubscriptionOwners`, against a real Azurite): a
subscription we hold costs one table read per minute, not one per POST; a removed one is refused
once the minute is over; an unknown id is never cached (a just-created subscription is known at
once, and forged ids fill nothing); the cache stays bounded."""

from __future__ import annotations

import uuid

from shared.adapters.storage import subscription_rows
from shared.adapters.storage.subscription_rows import (
    SubscriptionOwners,
    SubscriptionRow,
    delete_subscription_row,
    save_subscription,
)
from tests.storage_counter import StorageCounter

MAILBOX = "0b1c2d3e-0000-4000-8000-000000000001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_held_subscription_is_read_once_per_ttl_and_a_removed_one_is_refused_after_it(services):
    clock, subscription = Clock(), str(uuid.uuid4())
    owners = SubscriptionOwners(services.store, ttl=60, clock=clock)
    save_subscription(services.store, SubscriptionRow(subscription, MAILBOX, "2026-12-31T00:00:00Z"))
    counter = StorageCounter.install()
    counter.reset()

    for _ in range(5):
        assert owners.lookup({subscription}) == {subscription: MAILBOX}
    assert counter.by_service().get("table") == 1

    delete_subscription_row(services.store, subscription)
    clock.now += 59
    assert owners.lookup({subscription}) == {subscription: MAILBOX}  # within the minute: still held
    clock.now += 2
    assert owners.lookup({subscription}) == {subscription: None}  # read again: gone
    assert owners.lookup({subscription}) == {subscription: None}  # and not remembered as gone either


def test_unknown_ids_are_read_every_time_and_never_cached(services):
    owners = SubscriptionOwners(services.store, ttl=60, clock=Clock())
    subscription = str(uuid.uuid4())
    services.store.create_tables()  # the first use of a table provisions them all: not counted here
    counter = StorageCounter.install()
    counter.reset()

    for _ in range(3):
        assert owners.lookup({subscription}) == {subscription: None}
    assert counter.by_service().get("table") == 3

    save_subscription(services.store, SubscriptionRow(subscription, MAILBOX, "2026-12-31T00:00:00Z"))
    assert owners.lookup({subscription}) == {subscription: MAILBOX}  # created just now: known at once


def test_the_cache_stays_bounded(services, monkeypatch):
    monkeypatch.setattr(
        subscription_rows, "get_subscription", lambda store, sid: SubscriptionRow(sid, MAILBOX, "2026-12-31T00:00:00Z")
    )
    owners = SubscriptionOwners(services.store, ttl=60, clock=Clock())
    for n in range(10_050):
        owners.lookup({f"sub-{n}"})
    assert len(owners._known) <= 10_001


def test_a_mailbox_schedules_at_most_two_stray_deletions_in_ten_minutes(services):
    """Invented ids under one stolen clientState: two Graph deletes per ten minutes, not ten a POST."""
    clock = Clock()
    owners = SubscriptionOwners(services.store, ttl=60, clock=clock)
    other = "0b1c2d3e-0000-4000-8000-000000000002"
    first = owners.new_strays({(str(uuid.uuid4()), MAILBOX) for _ in range(10)} | {(str(uuid.uuid4()), other)})
    assert sorted(m for _, m in first) == [MAILBOX, MAILBOX, other]
    clock.now += 300
    assert owners.new_strays({(str(uuid.uuid4()), MAILBOX) for _ in range(10)}) == []
    clock.now += 301
    assert len(owners.new_strays({(str(uuid.uuid4()), MAILBOX) for _ in range(10)})) == 2
