"""The one Outlook → Dime.Scheduler pipeline: every change, whatever brought it, goes through here.

A batch of `Change`s (a single notification is a batch of one; a packed message, a delta or
reconcile page, a series' instances, guarded deletes, a retry or a page of a bulk retry are
larger) runs four steps, each a module of this package:

1. `read`: for all changes at once, what the triage still needs (links per mailbox, tombstones,
   events by `$batch`, primary-calendar proofs by calendarView members of a `$batch`);
2. `decide`: the pure triage (`shared.core.outlook_to_dime.triage`) and `decide` for each;
3. `write`: the breaker for notification deletes, planner-owned events, one `/import` per 100 calls;
4. `remember`: links (etag-conditional), tombstones, success transactions.

A change whose link changed under our write (another instance) goes round again with what it had
done (`Race`), up to MAX_RACES times. Within this process, a change holds its event's lock
(`event_locks`): the events nobody else works on are taken at once for the batch; an event another
batch holds is run as a batch of one that waits for it (so a duplicate sees the first one's link).
Failures come back per change in its `Outcome`; the entry decides (redeliver, re-queue, record).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from shared.core.decision import Action, Decision
from shared.core.outlook_to_dime.triage import Change, Step, known_from
from shared.core.resources import Resource
from shared.core.runs import NOTIFICATIONS, RunStats
from shared.core.transactions import ErrorCode, SyncError, Transaction
from shared.services import Services
from shared.usecases.event_locks import event_locks
from shared.usecases.outlook_to_dime.pipeline.decide import decide_all
from shared.usecases.outlook_to_dime.pipeline.item import Item, Outcome
from shared.usecases.outlook_to_dime.pipeline.read import Budget, GraphBatches, read_needs, read_resources
from shared.usecases.outlook_to_dime.pipeline.remember import record_successes, remember_all, remove_orphan
from shared.usecases.outlook_to_dime.pipeline.series import expand_series, series_gone
from shared.usecases.outlook_to_dime.pipeline.write import check_breaker, import_all, planner_owned_all

log = logging.getLogger(__name__)

MAX_RACES = 3
BATCH_BUDGET_SECONDS = 120.0  # how long a batch waits for throttled $batch members

__all__ = ["Change", "Outcome", "run"]


async def run(
    services: Services,
    changes: Sequence[Change],
    *,
    resources: dict[str, Resource] | None = None,
    batches: GraphBatches | None = None,
) -> list[Outcome]:
    """Bring every change to the board; an Outcome per change, in order.

    resources: the mailboxes' resources when the entry has them (else read; a mailbox that is not
    onboarded gets `mailbox-not-tracked`). batches: the run's $batch reader (its budget and request
    count); a fresh one otherwise."""
    batches = batches or GraphBatches(
        services, Budget(BATCH_BUDGET_SECONDS), RunStats(NOTIFICATIONS, "", services.clock())
    )
    items = [Item(change) for change in changes]
    await _resources(services, items, dict(resources or {}))
    open_items = [item for item in items if item.outcome is None]
    async with event_locks.hold_free(item.change.key for item in open_items) as free:
        now_free: list[Item] = []
        waiting: list[Item] = []
        for item in open_items:
            if item.change.key in free:
                free.discard(item.change.key)
                now_free.append(item)
            else:
                waiting.append(item)
        await _run_locked(services, now_free, batches)

    async def wait_for_turn(item: Item) -> None:
        async with event_locks.hold(item.change.key):
            await _run_locked(services, [item], batches)

    await asyncio.gather(*(wait_for_turn(item) for item in waiting))
    return [item.outcome or Outcome(None, SyncError(ErrorCode.GRAPH_UNAVAILABLE, "not handled")) for item in items]


async def _resources(services: Services, items: list[Item], known: dict[str, Resource]) -> None:
    missing = {item.change.mailbox_id for item in items} - set(known)
    found = await read_resources(services, missing)
    known.update({m: r for m, r in found.items() if r is not None})
    for item in items:
        item.resource = known.get(item.change.mailbox_id)
        if item.resource is not None and item.change.mailbox_id != item.resource.object_id:
            # Another spelling of the mailbox id (the resources table is keyed on the lower-cased
            # one): links, locks and GUIDs are keyed on the resource's.
            item.change = replace(item.change, mailbox_id=item.resource.object_id)
            item.known = known_from(item.change)
        if item.resource is None:
            log.info("dropped a change for mailbox %s, which is not onboarded", item.change.mailbox_id)
            item.done(Decision(Action.SKIP, "mailbox-not-tracked"))


async def _run_locked(services: Services, items: list[Item], batches: GraphBatches) -> None:
    """Read, decide, write, remember; the changes that lost a race go round again."""
    successes: list[Transaction] = []
    pending = items
    while pending:
        await read_needs(services, batches, pending)
        decide_all(services, pending, services.clock())
        await _expand(services, pending, batches)
        await check_breaker(services, pending)
        await planner_owned_all(services, pending)
        await import_all(services, pending)
        await remember_all(services, pending, successes)
        pending = [item for item in pending if item.outcome is None]
        for item in pending:
            if item.known.race.rounds >= MAX_RACES:
                item.fail(SyncError(ErrorCode.LINK_CONTESTED, f"event {item.change.event_id} kept changing under us"))
        pending = [item for item in pending if item.outcome is None]
    await record_successes(services, successes)
    for item in items:
        written = item.known.race.upserted
        outcome = item.outcome
        if written is not None and outcome and outcome.decision and outcome.decision.action is Action.SKIP:
            try:
                await remove_orphan(services, written)  # a delete or rewrite covers ours
            except SyncError as error:
                item.fail(error)


async def _expand(services: Services, items: list[Item], batches: GraphBatches) -> None:
    """Series masters: their instances are a batch of their own (`run`); a deleted master's
    linked instances go through the breaker as a set."""

    async def one(item: Item) -> None:
        v = item.verdict
        assert v is not None and item.resource is not None
        try:
            if v.step is Step.SERIES:
                assert v.master is not None
                item.done(await expand_series(services, item.resource, v.master, item.change.prove_new, run))
            else:
                item.done(await series_gone(services, item.resource, item.change.event_id, v.series_links, run))
        except SyncError as error:
            item.fail(error)

    await asyncio.gather(
        *(
            one(i)
            for i in items
            if i.outcome is None and i.verdict and i.verdict.step in (Step.SERIES, Step.SERIES_GONE)
        )
    )
