"""One queue message per POST: Graph's notifications of one request travel together, and are
read and written together.

Graph sends several notifications per POST, commonly three for one edit. One queue message per
notification costs each of them a put, a receive share and a delete, and makes the duplicates
race each other on different instances. Packed into one message (`{"changes": [...]}`, at most
`PACK_LIMIT` each), the worker folds the duplicates of one event into one change and works per
mailbox the way delta works per page (`MailboxRun`, `sync_batch`): the links in one go, a change
whose announced changeKey is the link's skipped without a Graph call, the rest read with `$batch`
(20 per request), the events new to us proven members of the primary calendar with calendarView
members of a `$batch`, and the plain new ones written by `sync_new_events` (one `/import`, one
table batch of links). Everything else (linked and changed, claimed deletes, 404s, series masters,
our own tagged events, tombstoned ones, what a batch left) goes through `sync_event` one by one
with what was already read, so the rules stay in one place. An event another message of this
process is working on is left to `sync_event` too, which waits for it (the per-event lock).

One event's failure never re-runs the others: a transient failure (a `$batch` member still
throttled after its retries included) is put back on the queue as a message of its own (then
retried and poisoned like any other), a permanent one becomes that event's failed transaction.
Success transactions are written together at the end (one table batch per mailbox). Only when
that re-enqueue itself fails does the packed message fail, and a redelivery costs the events
already done one link read each (their changeKey is linked).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.core.transactions import SyncError
from shared.names import NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime.sync_event import AlreadyRead

if TYPE_CHECKING:
    from shared.core.outlook_to_dime.webhook import ChangeNotification
    from shared.usecases.outlook_to_dime.mailbox_runs import MailboxRun

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


MESSAGE_BUDGET_SECONDS = 120.0  # how long a packed message waits for throttled $batch members


async def apply_notifications(message: dict[str, Any], services: Services) -> None:
    """The worker for a packed message (a plain one goes to `apply_notification` unchanged)."""
    from shared.usecases.outlook_to_dime.sync_event import apply_notification

    if not is_packed(message):
        await apply_notification(message, services)
        return
    changes = fold(message[PACKED_KEY])
    by_mailbox: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_mailbox.setdefault(str(change.get("mailboxId")), []).append(change)
    successes: list[Any] = []  # one table batch of success transactions for the whole message
    shares = await asyncio.gather(
        *(_apply_mailbox(services, mailbox, items, successes) for mailbox, items in by_mailbox.items()),
        return_exceptions=True,
    )
    again: list[dict[str, Any]] = []
    for items, share in zip(by_mailbox.values(), shares, strict=True):
        if isinstance(share, BaseException):  # e.g. storage failed mid-way: each again on its own (idempotent)
            log.warning("a packed message's %d changes of one mailbox failed: %r", len(items), share)
            again.extend(items)
        else:
            again.extend(share)
    if successes:
        await _record_successes(services, successes)
    if again:
        log.warning(
            "%d of %d changes of a packed message failed transiently: queued on their own", len(again), len(changes)
        )
        await asyncio.to_thread(services.queues.send_many, NOTIFICATIONS_QUEUE, again)


@dataclass
class _Share:
    """One mailbox's changes of a packed message, sorted by what they still need."""

    run: MailboxRun
    one_by_one: list[tuple[dict[str, Any], AlreadyRead | None]] = field(default_factory=list)
    again: list[dict[str, Any]] = field(default_factory=list)  # transient failures
    failed: list[tuple[dict[str, Any], SyncError]] = field(default_factory=list)
    skipped: int = 0  # unchanged (the link's changeKey), or not in the primary calendar
    batched: int = 0

    def fail(self, change: dict[str, Any], error: SyncError) -> None:
        if error.code.transient:
            self.again.append(change)
        else:
            self.failed.append((change, error))


async def _apply_mailbox(
    services: Services, mailbox_id: str, changes: list[dict[str, Any]], successes: list[Any]
) -> list[dict[str, Any]]:
    """One mailbox's changes of a packed message; returns those to queue again on their own."""
    from shared.core.outlook_to_dime.webhook import ChangeNotification
    from shared.core.runs import NOTIFICATIONS, RunStats
    from shared.usecases.event_locks import event_locks
    from shared.usecases.outlook_to_dime.mailbox_runs import Budget, MailboxRun
    from shared.usecases.outlook_to_dime.subscriptions import MailboxNotTracked
    from shared.usecases.outlook_to_dime.sync_event import apply_notification, record_failure, tracked_resource

    try:
        resource = await tracked_resource(mailbox_id, services)
    except MailboxNotTracked:
        log.info("dropped %d notifications for mailbox %s, which is not onboarded", len(changes), mailbox_id)
        return []
    stats = RunStats(NOTIFICATIONS, resource.object_id, services.clock())
    share = _Share(MailboxRun(services, resource, stats, Budget(MESSAGE_BUDGET_SECONDS)))
    parsed: list[tuple[dict[str, Any], ChangeNotification]] = []
    for change in changes:
        try:
            parsed.append((change, ChangeNotification.from_message(change)))
        except (KeyError, TypeError, ValueError):
            share.one_by_one.append((change, None))  # apply_notification raises: poisoned, then a failed row
    keys = [(resource.object_id, note.event_id) for _, note in parsed]
    async with event_locks.hold_free(keys) as free:
        share.one_by_one += [
            (change, None) for change, note in parsed if (resource.object_id, note.event_id) not in free
        ]
        await _batched(
            share, [(change, note) for change, note in parsed if (resource.object_id, note.event_id) in free], successes
        )
    for change, error in share.failed:
        await asyncio.to_thread(record_failure, services, ChangeNotification.from_message(change), error, change)
    done = asyncio.get_running_loop().create_future()
    done.set_result(resource)
    outcomes = await asyncio.gather(
        *(
            apply_notification(change, services, resources={mailbox_id: done}, successes=successes, read=read)
            for change, read in share.one_by_one
        ),
        return_exceptions=True,
    )
    share.again += [
        change
        for (change, _), outcome in zip(share.one_by_one, outcomes, strict=True)
        if isinstance(outcome, BaseException)
    ]
    log.info(
        "packed message, mailbox %s: %d changes, %d skipped, %d batched, %d one by one, %d failed, %d again; "
        "%d Graph requests",
        resource.object_id,
        len(changes),
        share.skipped,
        share.batched,
        len(share.one_by_one),
        len(share.failed),
        len(share.again),
        stats.graph_requests,
    )
    return share.again


async def _batched(
    share: _Share, changes: list[tuple[dict[str, Any], ChangeNotification]], successes: list[Any]
) -> None:
    """The part of a mailbox's changes that batches: links read together (a query per 14: fewer
    round trips than a point read each, also over a partition of 10,000 links in Azurite), one
    `$batch` of reads per 20, a batched proof for the events new to us, `sync_new_events` for the
    plain ones. What does not batch is put into `share.one_by_one` with what was read of it."""
    from shared.adapters.graph import classify_status
    from shared.core.events import missing_fields
    from shared.usecases.outlook_to_dime.sync_batch import sync_new_events

    run = share.run
    services, mailbox = run.services, run.mailbox_id
    found = await asyncio.to_thread(services.store.links_among, mailbox, [note.event_id for _, note in changes])
    links = [found.get(note.event_id) for _, note in changes]
    to_read = []
    for (change, note), link in zip(changes, links, strict=True):
        if note.change_type == "deleted":
            share.one_by_one.append((change, AlreadyRead(link=link)))  # a claim, confirmed by sync_event
        elif link is not None and note.change_key and link.change_key == note.change_key:
            share.skipped += 1  # as sync_event decides it: nothing changed since the link, no Graph call
        else:
            to_read.append((change, note.event_id, link))
    if not to_read:
        return
    answers = await run.read_events([event_id for _, event_id, _ in to_read])
    new: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for change, event_id, link in to_read:
        answer = answers[event_id]
        body = answer.body
        if answer.status == 200 and body is not None:
            plain = body.get("id") == event_id and body.get("type") != "seriesMaster" and not missing_fields(body)
            if link is None and plain:
                new.append((change, body))
            else:
                share.one_by_one.append((change, AlreadyRead(event_json=body, link=link)))
        elif answer.status == 404:
            share.one_by_one.append((change, AlreadyRead(link=link, gone=True)))
        else:
            share.fail(change, classify_status(answer.status, {"Retry-After": answer.retry_after}, "event read"))
    if not new:
        return
    proofs = await run.prove_listed([body for _, body in new])
    proven: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for change, body in new:
        proof = proofs[str(body["id"])]
        if isinstance(proof, SyncError):
            share.fail(change, proof)
        elif proof:
            proven.append((change, body))
        else:
            share.skipped += 1  # not-in-calendar: another calendar's event, or a deleted one still readable
    left: set[str] = {str(body["id"]) for _, body in proven}
    if len(proven) > 1:
        outcome = await sync_new_events(services, run.resource, [body for _, body in proven], successes=successes)
        left = set(outcome.one_by_one)
        share.batched += len(proven) - len(left)
    share.one_by_one += [
        (change, AlreadyRead(event_json=body, in_calendar=True)) for change, body in proven if str(body["id"]) in left
    ]


async def _record_successes(services: Services, successes: list[Any]) -> None:
    """The message's success transactions, one table batch per mailbox. They are history for the
    admin views, written after the writes they describe: a storage failure here is logged, never
    a reason to run the message's writes again."""
    from shared.adapters.transactions_store import transaction_store

    try:
        await asyncio.to_thread(transaction_store(services).add_many, successes)
    except Exception:
        log.exception("could not record %d success transactions of a packed message", len(successes))
