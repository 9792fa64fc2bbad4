"""Subscriptions and removed mailboxes in Table Storage (beside StateStore, using its tables).

- subscriptions table: PartitionKey "subscription", RowKey = subscription id -> MailboxId, Expiry,
  RenewedAt (when we last created or renewed it: a reauthorizationRequired soon after costs no PATCH).
  Found by id (lifecycle items without `resource`, notifications of unknown mailboxes); found by
  mailbox through the resource row's SubscriptionId/SubscriptionExpiry.
- resources table, PartitionKey "removed", RowKey = object id: a mailbox an administrator deleted,
  so a late notification does not bring it back (list_resources reads only "resource").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.names import RESOURCES_TABLE, SUBSCRIPTIONS_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore

SUBSCRIPTION_PARTITION = "subscription"
OWNER_CACHE_SECONDS = 60.0  # a known subscription stays known this long without a table read
STRAY_MEMORY_SECONDS = 600.0  # a stray scheduled for deletion is not scheduled again this long
# Strays scheduled per mailbox per STRAY_MEMORY_SECONDS (per process): a lost create answer leaves
# one duplicate, a retried one two; random ids under a stolen clientState cost no more than that.
STRAYS_PER_MAILBOX = 2
REMOVED_PARTITION = "removed"


@dataclass(frozen=True)
class SubscriptionRow:
    id: str
    mailbox_id: str
    expiry: str
    created_at: str = ""
    made_with: str = ""  # subscription_fingerprint() of the secret and URLs it was created with
    renewed_at: str = ""  # when we last created or renewed it ("" = unknown: not recent)


def save_subscription(store: StateStore, row: SubscriptionRow) -> None:
    from azure.data.tables import UpdateMode

    entity = {
        "PartitionKey": SUBSCRIPTION_PARTITION,
        "RowKey": row.id,
        "MailboxId": row.mailbox_id.lower(),
        "Expiry": row.expiry,
        "CreatedAt": row.created_at,
        "MadeWith": row.made_with,
        "RenewedAt": row.renewed_at,
    }
    store.table(SUBSCRIPTIONS_TABLE).upsert_entity(entity, mode=UpdateMode.REPLACE)


def get_subscription(store: StateStore, subscription_id: str) -> SubscriptionRow | None:
    from azure.core.exceptions import ResourceNotFoundError

    if not subscription_id or any(c in subscription_id for c in "/\\#?'"):
        return None
    try:
        entity = store.table(SUBSCRIPTIONS_TABLE).get_entity(SUBSCRIPTION_PARTITION, subscription_id)
    except ResourceNotFoundError:
        return None
    return _row(entity)


def delete_subscription_row(store: StateStore, subscription_id: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        store.table(SUBSCRIPTIONS_TABLE).delete_entity(SUBSCRIPTION_PARTITION, subscription_id)


def subscriptions_of(store: StateStore, mailbox_id: str) -> list[SubscriptionRow]:
    entities = store.table(SUBSCRIPTIONS_TABLE).query_entities(
        "PartitionKey eq @pk and MailboxId eq @mailbox",
        parameters={"pk": SUBSCRIPTION_PARTITION, "mailbox": mailbox_id.lower()},
    )
    return [_row(e) for e in entities]


def _row(entity: dict) -> SubscriptionRow:
    return SubscriptionRow(
        entity["RowKey"],
        entity.get("MailboxId", ""),
        entity.get("Expiry", ""),
        entity.get("CreatedAt", ""),
        entity.get("MadeWith", ""),
        entity.get("RenewedAt", ""),
    )


def mailbox_of_subscription(store: StateStore, subscription_id: str) -> str | None:
    """The lookup the webhook uses to verify lifecycle items that carry no `resource`."""
    row = get_subscription(store, subscription_id)
    return row.mailbox_id if row else None


def delete_resource_row(store: StateStore, object_id: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.adapters.storage.tables import RESOURCE_PARTITION

    with contextlib.suppress(ResourceNotFoundError):
        store.table(RESOURCES_TABLE).delete_entity(RESOURCE_PARTITION, object_id.lower())


def mark_removed(store: StateStore, object_id: str, when: str) -> None:
    from azure.data.tables import UpdateMode

    entity = {"PartitionKey": REMOVED_PARTITION, "RowKey": object_id.lower(), "RemovedAt": when}
    store.table(RESOURCES_TABLE).upsert_entity(entity, mode=UpdateMode.REPLACE)


def unmark_removed(store: StateStore, object_id: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        store.table(RESOURCES_TABLE).delete_entity(REMOVED_PARTITION, object_id.lower())


def was_removed(store: StateStore, object_id: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        store.table(RESOURCES_TABLE).get_entity(REMOVED_PARTITION, object_id.lower())
    except ResourceNotFoundError:
        return False
    return True


class SubscriptionOwners:
    """Which mailbox holds a subscription id: the subscriptions table, with a short positive cache.

    Unknown ids are not cached (a just-created subscription must become known at once); strays
    already scheduled for deletion are remembered so a flood schedules each only once, and each
    mailbox schedules at most STRAYS_PER_MAILBOX in ten minutes, whatever ids a caller invents."""

    def __init__(
        self, store: StateStore, ttl: float = OWNER_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[str, float]] = {}
        self._strays_scheduled: dict[str, float] = {}
        self._strays_of_mailbox: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def lookup(self, subscription_ids: set[str]) -> dict[str, str | None]:
        """Raises when storage fails (the webhook answers 503)."""
        now = self._clock()
        owners: dict[str, str | None] = {}
        for subscription_id in subscription_ids:
            cached = self._known.get(subscription_id)
            if cached and now - cached[1] < self._ttl:
                owners[subscription_id] = cached[0]
                continue
            row = get_subscription(self._store, subscription_id)
            owners[subscription_id] = row.mailbox_id if row else None
            if row:
                with self._lock:
                    if len(self._known) > 10_000:
                        self._known.clear()
                    self._known[subscription_id] = (row.mailbox_id, now)
        return owners

    def new_strays(self, strays: set[tuple[str, str]], limit: int = 10) -> list[tuple[str, str]]:
        """The strays not scheduled for deletion in the last ten minutes (at most `limit` per POST,
        at most STRAYS_PER_MAILBOX per mailbox in ten minutes)."""
        now = self._clock()
        fresh = []
        with self._lock:
            if len(self._strays_scheduled) > 10_000:
                self._strays_scheduled.clear()
            if len(self._strays_of_mailbox) > 10_000:
                self._strays_of_mailbox.clear()
            for subscription_id, mailbox_id in sorted(strays):
                scheduled = self._strays_scheduled.get(subscription_id, -1e9)
                if len(fresh) >= limit or now - scheduled <= STRAY_MEMORY_SECONDS:
                    continue
                recent = [t for t in self._strays_of_mailbox.get(mailbox_id, []) if now - t <= STRAY_MEMORY_SECONDS]
                if len(recent) >= STRAYS_PER_MAILBOX:
                    self._strays_of_mailbox[mailbox_id] = recent
                    continue
                self._strays_of_mailbox[mailbox_id] = [*recent, now]
                self._strays_scheduled[subscription_id] = now
                fresh.append((subscription_id, mailbox_id))
        return fresh

    def forget(self, subscription_id: str) -> None:
        with self._lock:
            self._known.pop(subscription_id, None)
