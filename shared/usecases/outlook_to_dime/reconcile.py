"""Reconcile, nightly: the check-up of every tracked appointment.

Every linked event is read again with $batch (20 per request) and brought through the pipeline:
changed means an upsert, unchanged means nothing, no longer allowed (private, consent withdrawn,
outside the window) means a delete by the same decision as everywhere else. Events that are gone
are deleted as a set, through the circuit breaker: a 404, or an event the primary calendar no
longer lists over the window (read once per run, ids only: a deleted event may still answer GET,
graph.md). That listing heals a rare race: an event deleted while its appointment was being
written (the delete found no link yet, and an incremental delta does not report it again).
A cursor (the last link handled) lets a pass that runs out of time continue: the mailbox is queued
on the resync queue with the reason "reconcile-continue", and the next run picks up where this
one stopped.
"""

from __future__ import annotations

import asyncio
import logging

from shared.core.ids import encode_key
from shared.core.links import Link
from shared.core.resources import Resource
from shared.core.runs import RECONCILE, RunStats
from shared.names import RESYNC_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime.mailbox_runs import (
    RUN_BUDGET_SECONDS,
    Budget,
    MailboxRun,
    WindowListing,
    for_each_mailbox,
    guarded_run,
)
from shared.usecases.outlook_to_dime.pipeline.read import state_store

log = logging.getLogger(__name__)

RECONCILE_CONTINUE = "reconcile-continue"  # resync-queue reason: continue an unfinished pass
LINKS_PER_STEP = 200  # links read from the table and checked between two budget checks


async def run_reconcile(
    services: Services, *, reason: str = "timer", budget_seconds: float | None = None
) -> list[RunStats]:
    """The reconcile timer: every mailbox that has links, a few at a time, within one time budget.

    Disabled mailboxes are included: their links are what the decision must remove.
    """
    budget = Budget(RUN_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    resources = await asyncio.to_thread(lambda: list(services.store.list_resources()))
    runs = await for_each_mailbox(resources, lambda resource: reconcile_mailbox(services, resource, reason, budget))
    unfinished = [run.mailbox_id for run in runs if run.outcome == "paused"]
    for mailbox_id in unfinished:
        await asyncio.to_thread(
            services.queues.send, RESYNC_QUEUE, {"mailboxId": mailbox_id, "reason": RECONCILE_CONTINUE}
        )
    if unfinished:
        log.info("reconcile continues for %d mailboxes through %s", len(unfinished), RESYNC_QUEUE)
    return runs


async def reconcile_mailbox(services: Services, resource: Resource, reason: str, budget: Budget) -> RunStats:
    stats = RunStats(RECONCILE, resource.object_id, services.clock(), reason)
    run = MailboxRun(services, resource, stats, budget)
    return await guarded_run(services, stats, lambda: _reconcile(run))


async def _reconcile(run: MailboxRun) -> str:
    services, mailbox = run.services, run.mailbox_id
    store = state_store(services)
    cursor = await asyncio.to_thread(store.reconcile_cursor, mailbox)
    run.stats.round = "continued" if cursor else "new-pass"
    rows = store.links_after(mailbox, cursor)
    listing = await _window_listing(run)
    gone: list[Link] = []
    finished = False
    while True:
        step = await asyncio.to_thread(_take, rows, LINKS_PER_STEP)
        if not step:
            finished = True
            break
        missing, handled = await run.check_links(step, listing=listing)
        run.stats.changes += handled
        gone.extend(missing)
        if handled:
            cursor = encode_key(step[handled - 1].event_id)
        if handled < len(step) or run.budget.expired():
            break
    verdict = await run.delete_guarded(gone)
    await asyncio.to_thread(store.save_reconcile_cursor, mailbox, None if finished else cursor, services.clock())
    if verdict is not None and not verdict.allowed:
        return "breaker-tripped"
    return "completed" if finished else "paused"


async def _window_listing(run: MailboxRun) -> WindowListing:
    """What the primary calendar lists over the sync window (the window the links were made in)."""
    from shared.adapters.graph import INSTANCES_PAGE_SIZE
    from shared.core.outlook_to_dime.delta import Window

    settings = run.services.settings
    window = Window.around(run.services.clock(), settings.sync_days_back, settings.sync_days_forward)
    ids = await run.services.graph.calendar_ids(run.mailbox_id, *window.iso())
    run.stats.graph_requests += max(1, -(-len(ids) // INSTANCES_PAGE_SIZE))  # pages of 100 ids
    return WindowListing(ids, window.start, window.end)


def _take(rows, count: int) -> list[Link]:  # type: ignore[no-untyped-def]
    taken = []
    for _, link in rows:
        taken.append(link)
        if len(taken) == count:
            break
    return taken
