"""One queue message per POST: Graph's notifications of one request travel together.

Graph sends several notifications per POST, commonly three for one edit. One queue message per
notification costs each of them a put, a receive share and a delete, and makes the duplicates
race each other on different instances. Packed into one message (`{"changes": [...]}`, at most
`PACK_LIMIT` each), the worker folds the duplicates of one event into one change and brings each
distinct event through `apply_notification`, concurrently.

One event's failure never re-runs the others: a transient failure is put back on the queue as a
message of its own (then retried and poisoned like any other), a permanent one is already a failed
transaction. Success transactions are written together at the end (one table batch per
mailbox). Only when that re-enqueue itself fails does the packed message fail, and a
redelivery costs the events already done one link read each (their changeKey is linked).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shared.names import NOTIFICATIONS_QUEUE
from shared.services import Services

log = logging.getLogger(__name__)

PACK_LIMIT = 50  # changes per message: ~250 bytes each, base64 grows it by 4/3, a message holds 64 KiB
PACKED_KEY = "changes"


def pack(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The queue messages for one POST's changes: a lone change stays a plain message."""
    if len(changes) <= 1:
        return changes
    return [{PACKED_KEY: changes[start : start + PACK_LIMIT]} for start in range(0, len(changes), PACK_LIMIT)]


def is_packed(message: dict[str, Any]) -> bool:
    return isinstance(message.get(PACKED_KEY), list)


def fold(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One change per event. Graph does not promise order, so when the duplicates announce
    different changeKeys none is trusted (Graph is read); a `deleted` among them stays a claim
    that sync_event confirms with Graph either way."""
    by_event: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for change in changes:
        if isinstance(change, dict):
            by_event.setdefault((str(change.get("mailboxId")), str(change.get("eventId"))), []).append(change)
    folded = []
    for items in by_event.values():
        first = dict(items[0])
        keys = {item.get("changeKey") for item in items}
        first["changeKey"] = keys.pop() if len(keys) == 1 else None
        if any(item.get("changeType") == "deleted" for item in items):
            first["changeType"] = "deleted"
        first["subscriptionId"] = next((i["subscriptionId"] for i in items if i.get("subscriptionId")), "")
        folded.append(first)
    return folded


async def apply_notifications(message: dict[str, Any], services: Services) -> None:
    """The worker for a packed message (a plain one goes to `apply_notification` unchanged)."""
    from shared.usecases.outlook_to_dime.sync_event import apply_notification

    if not is_packed(message):
        await apply_notification(message, services)
        return
    changes = fold(message[PACKED_KEY])
    resources: dict[str, Any] = {}  # one resource read per mailbox for the whole message
    successes: list[Any] = []  # and one table batch of success transactions
    outcomes = await asyncio.gather(
        *(apply_notification(c, services, resources=resources, successes=successes) for c in changes),
        return_exceptions=True,
    )
    if successes:
        await _record_successes(services, successes)
    again = [change for change, outcome in zip(changes, outcomes, strict=True) if isinstance(outcome, BaseException)]
    if again:
        log.warning(
            "%d of %d changes of a packed message failed transiently: queued on their own", len(again), len(changes)
        )
        await asyncio.to_thread(services.queues.send_many, NOTIFICATIONS_QUEUE, again)


async def _record_successes(services: Services, successes: list[Any]) -> None:
    """The message's success transactions, one table batch per mailbox. They are history for the
    admin views, written after the writes they describe: a storage failure here is logged, never
    a reason to run the message's writes again."""
    from shared.adapters.transactions_store import transaction_store

    try:
        await asyncio.to_thread(transaction_store(services).add_many, successes)
    except Exception:
        log.exception("could not record %d success transactions of a packed message", len(successes))
