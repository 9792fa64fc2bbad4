"""One queue message per POST: Graph's notifications of one request travel together, and are
read and written together.

Graph sends several notifications per POST, commonly three for one edit. One queue message per
notification costs each of them a put, a receive share and a delete, and makes the duplicates
race each other on different instances. Packed into one message (`{"changes": [...]}`, at most
`PACK_LIMIT` each), the worker folds the duplicates of one event into one change and works the
way delta works per page (`GraphBatches`, `sync_batch`), for all the message's mailboxes at once
(a POST often spans several): each mailbox's links in one go, a change whose announced changeKey
is the link's skipped without a Graph call, the rest read with `$batch` (20 per request, members
of any mailboxes), the events new to us proven members of their primary calendar with calendarView
members of a `$batch`, and the plain new ones written by `sync_new_events_of` (one `/import` for
the message, one table batch of links per mailbox). Everything else (linked and changed, claimed
deletes, 404s, series masters, our own tagged events, tombstoned ones, what a batch left) goes
through `sync_event` one by one with what was already read, so the rules stay in one place. An
event another message of this process is working on is left to `sync_event` too, which waits for
it (the per-event lock).

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
    from shared.core.links import Link
    from shared.core.outlook_to_dime.webhook import ChangeNotification
    from shared.core.resources import Resource

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
    """The worker for a packed message (a plain one goes to `apply_notification` unchanged), in
    phases: each mailbox's share opened (resource, parsed changes); the events nobody else works
    on locked; then for all mailboxes at once the links read (per mailbox), the events read, the
    new ones proven and written (`_batched`); then the rest one by one, per mailbox."""
    from shared.usecases.event_locks import event_locks

    if not is_packed(message):
        from shared.usecases.outlook_to_dime.sync_event import apply_notification

        await apply_notification(message, services)
        return
    changes = fold(message[PACKED_KEY])
    by_mailbox: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_mailbox.setdefault(str(change.get("mailboxId")), []).append(change)
    again: list[dict[str, Any]] = []
    shares: list[_Share] = []
    opened = await asyncio.gather(
        *(_open(services, mailbox, items) for mailbox, items in by_mailbox.items()), return_exceptions=True
    )
    for items, share in zip(by_mailbox.values(), opened, strict=True):
        if isinstance(share, BaseException):  # e.g. storage failed: each again on its own (idempotent)
            log.warning("a packed message's %d changes of one mailbox failed: %r", len(items), share)
            again.extend(items)
        elif share is not None:
            shares.append(share)
    successes: list[Any] = []  # one table batch of success transactions for the whole message
    keys = [(share.mailbox_id, note.event_id) for share in shares for _, note in share.parsed]
    async with event_locks.hold_free(keys) as free:
        for share in shares:
            share.sort_out(free)
        try:
            requests = await _batched(services, shares, successes)
        except Exception as error:  # storage or Graph failed for the message: each again on its own
            log.warning("the batched part of a packed message of %d changes failed: %r", len(changes), error)
            again.extend(change for share in shares for change in share.changes)
            shares, requests = [], 0
    finished = await asyncio.gather(*(_finish(services, share, successes) for share in shares), return_exceptions=True)
    for share, outcome in zip(shares, finished, strict=True):
        if isinstance(outcome, BaseException):
            log.warning("a packed message's %d changes of one mailbox failed: %r", len(share.changes), outcome)
            again.extend(share.changes)
        else:
            again.extend(share.again)
    if successes:
        await _record_successes(services, successes)
    log.info(
        "packed message: %d changes over %d mailboxes, %d again; %d Graph requests for its batched part",
        len(changes),
        len(by_mailbox),
        len(again),
        requests,
    )
    if again:
        log.warning(
            "%d of %d changes of a packed message failed transiently: queued on their own", len(again), len(changes)
        )
        await asyncio.to_thread(services.queues.send_many, NOTIFICATIONS_QUEUE, again)


@dataclass
class _Share:
    """One mailbox's changes of a packed message, sorted by what they still need."""

    resource: Resource
    changes: list[dict[str, Any]]
    parsed: list[tuple[dict[str, Any], ChangeNotification]] = field(default_factory=list)
    free: list[tuple[dict[str, Any], ChangeNotification]] = field(default_factory=list)  # locked for this message
    one_by_one: list[tuple[dict[str, Any], AlreadyRead | None]] = field(default_factory=list)
    again: list[dict[str, Any]] = field(default_factory=list)  # transient failures
    failed: list[tuple[dict[str, Any], SyncError]] = field(default_factory=list)
    skipped: int = 0  # unchanged (the link's changeKey), or not in the primary calendar
    batched: int = 0

    @property
    def mailbox_id(self) -> str:
        return self.resource.object_id

    def sort_out(self, free: set[tuple[str, str]]) -> None:
        """An event another message of this process works on is left to sync_event, which waits;
        so is one another share of this message claimed first (two spellings of one mailbox id)."""
        for change, note in self.parsed:
            key = (self.mailbox_id, note.event_id)
            if key in free:
                free.discard(key)
                self.free.append((change, note))
            else:
                self.one_by_one.append((change, None))

    def fail(self, change: dict[str, Any], error: SyncError) -> None:
        if error.code.transient:
            self.again.append(change)
        else:
            self.failed.append((change, error))


async def _open(services: Services, mailbox_id: str, changes: list[dict[str, Any]]) -> _Share | None:
    """A mailbox's share: its resource (None when it is not onboarded) and its parsed changes."""
    from shared.core.outlook_to_dime.webhook import ChangeNotification
    from shared.usecases.outlook_to_dime.subscriptions import MailboxNotTracked
    from shared.usecases.outlook_to_dime.sync_event import tracked_resource

    try:
        resource = await tracked_resource(mailbox_id, services)
    except MailboxNotTracked:
        log.info("dropped %d notifications for mailbox %s, which is not onboarded", len(changes), mailbox_id)
        return None
    share = _Share(resource, changes)
    for change in changes:
        try:
            share.parsed.append((change, ChangeNotification.from_message(change)))
        except (KeyError, TypeError, ValueError):
            share.one_by_one.append((change, None))  # apply_notification raises: poisoned, then a failed row
    return share


async def _finish(services: Services, share: _Share, successes: list[Any]) -> None:
    """A mailbox's failed transactions, then what did not batch through `sync_event` one by one
    with what was read of it; the transient failures stay in `share.again`."""
    from shared.core.outlook_to_dime.webhook import ChangeNotification
    from shared.usecases.outlook_to_dime.sync_event import apply_notification, record_failure

    for change, error in share.failed:
        await asyncio.to_thread(record_failure, services, ChangeNotification.from_message(change), error, change)
    done = asyncio.get_running_loop().create_future()
    done.set_result(share.resource)
    outcomes = await asyncio.gather(
        *(
            apply_notification(change, services, resources={share.mailbox_id: done}, successes=successes, read=read)
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
        "packed message, mailbox %s: %d changes, %d skipped, %d batched, %d one by one, %d failed, %d again",
        share.mailbox_id,
        len(share.changes),
        share.skipped,
        share.batched,
        len(share.one_by_one),
        len(share.failed),
        len(share.again),
    )


async def _batched(services: Services, shares: list[_Share], successes: list[Any]) -> int:
    """The part of the message that batches, for all its mailboxes at once: each mailbox's links
    read together (a query per 14: fewer round trips than a point read each, also over a
    partition of 10,000 links in Azurite), one `$batch` of reads per 20 events, one `$batch` of
    proofs per 20 for the events new to us, `sync_new_events_of` for the plain ones (one
    `/import`). What does not batch is put into its share's `one_by_one` with what was read of
    it. Returns the Graph requests made."""
    from shared.adapters.graph import classify_status
    from shared.core.events import missing_fields
    from shared.core.runs import NOTIFICATIONS, RunStats
    from shared.usecases.outlook_to_dime.mailbox_runs import Budget, GraphBatches
    from shared.usecases.outlook_to_dime.sync_batch import sync_new_events_of

    batches = GraphBatches(services, Budget(MESSAGE_BUDGET_SECONDS), RunStats(NOTIFICATIONS, "", services.clock()))
    found = await asyncio.gather(
        *(
            asyncio.to_thread(services.store.links_among, share.mailbox_id, [note.event_id for _, note in share.free])
            for share in shares
        )
    )
    to_read: list[tuple[_Share, dict[str, Any], str, Link | None]] = []
    for share, links in zip(shares, found, strict=True):
        for change, note in share.free:
            link = links.get(note.event_id)
            if note.change_type == "deleted":
                share.one_by_one.append((change, AlreadyRead(link=link)))  # a claim, confirmed by sync_event
            elif link is not None and note.change_key and link.change_key == note.change_key:
                share.skipped += 1  # as sync_event decides it: nothing changed since the link, no Graph call
            else:
                to_read.append((share, change, note.event_id, link))
    if not to_read:
        return batches.stats.graph_requests
    answers = await batches.read_events([(share.mailbox_id, event_id) for share, _, event_id, _ in to_read])
    new: list[tuple[_Share, dict[str, Any], dict[str, Any]]] = []
    for share, change, event_id, link in to_read:
        answer = answers[(share.mailbox_id, event_id)]
        body = answer.body
        if answer.status == 200 and body is not None:
            plain = body.get("id") == event_id and body.get("type") != "seriesMaster" and not missing_fields(body)
            if link is None and plain:
                new.append((share, change, body))
            else:
                share.one_by_one.append((change, AlreadyRead(event_json=body, link=link)))
        elif answer.status == 404:
            share.one_by_one.append((change, AlreadyRead(link=link, gone=True)))
        else:
            share.fail(change, classify_status(answer.status, {"Retry-After": answer.retry_after}, "event read"))
    if not new:
        return batches.stats.graph_requests
    proofs = await batches.prove_listed([(share.mailbox_id, body) for share, _, body in new])
    proven: list[tuple[_Share, dict[str, Any], dict[str, Any]]] = []
    for share, change, body in new:
        proof = proofs[(share.mailbox_id, str(body["id"]))]
        if isinstance(proof, SyncError):
            share.fail(change, proof)
        elif proof:
            proven.append((share, change, body))
        else:
            share.skipped += 1  # not-in-calendar: another calendar's event, or a deleted one still readable
    left: set[tuple[str, str]] = {(share.mailbox_id, str(body["id"])) for share, _, body in proven}
    if len(proven) > 1:
        pages: dict[str, tuple[Resource, list[dict[str, Any]]]] = {}
        for share, _, body in proven:
            pages.setdefault(share.mailbox_id, (share.resource, []))[1].append(body)
        outcomes = await sync_new_events_of(services, list(pages.values()), successes=successes)
        left = {(mailbox, event_id) for mailbox, outcome in outcomes.items() for event_id in outcome.one_by_one}
    for share, change, body in proven:
        if (share.mailbox_id, str(body["id"])) in left:
            share.one_by_one.append((change, AlreadyRead(event_json=body, in_calendar=True)))
        else:
            share.batched += 1
    return batches.stats.graph_requests


async def _record_successes(services: Services, successes: list[Any]) -> None:
    """The message's success transactions, one table batch per mailbox. They are history for the
    admin views, written after the writes they describe: a storage failure here is logged, never
    a reason to run the message's writes again."""
    from shared.adapters.storage.transactions_store import transaction_store

    try:
        await asyncio.to_thread(transaction_store(services).add_many, successes)
    except Exception:
        log.exception("could not record %d success transactions of a packed message", len(successes))
