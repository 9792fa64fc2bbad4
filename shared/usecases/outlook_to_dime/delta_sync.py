"""Delta: every few minutes, what changed in each enabled mailbox's calendar reaches Dime.Scheduler,
even when every notification was lost.

Per mailbox: follow calendarView/delta from the stored deltaLink (or list the whole window in a
fresh round), page by page, and bring every reported event through the pipeline (a page a batch). `@removed` is
also how Graph reports an event that moved out of the window, so a removed event is only acted on
when it is linked, and then only after reading it again: gone (404) means delete, found means
the pipeline decides (outside the window: delete). After a full round, linked events the round did
not list are read again the same way (a fresh round does not report earlier deletions). Deletes
inferred from absence pass the circuit breaker as a set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.core.links import Link
from shared.core.outlook_to_dime.delta import (
    DeltaExpired,
    DeltaPage,
    DeltaState,
    Window,
    change_key_of,
    digest,
    read_page,
)
from shared.core.outlook_to_dime.triage import unchanged
from shared.core.resources import Resource
from shared.core.runs import DELTA, RunStats
from shared.core.transactions import ErrorCode, SyncError
from shared.services import Services
from shared.usecases.outlook_to_dime.mailbox_runs import (
    RUN_BUDGET_SECONDS,
    Budget,
    EventReads,
    MailboxRun,
    for_each_mailbox,
    guarded_run,
)

if TYPE_CHECKING:
    from shared.adapters.storage.aio_stores import AsyncSyncStateStore

log = logging.getLogger(__name__)

# Resync reasons that list the whole window again: what consent now allows may never have changed
# in Outlook, so an incremental round would not report it.
FULL_ROUND_REASONS = frozenset({"onboarded", "consentChanged", "admin"})
LEASE_MARGIN_SECONDS = 120  # a lease outlives the run's budget by this much (then a crashed holder's expires)


async def run_delta(
    services: Services, *, reason: str = "timer", budget_seconds: float | None = None
) -> list[RunStats]:
    """The delta timer: every enabled mailbox, a few at a time, within one time budget."""
    budget = Budget(RUN_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    resources = await services.astore.list_resources()
    enabled = [resource for resource in resources if resource.consent.enabled]
    return await for_each_mailbox(enabled, lambda resource: delta_mailbox(services, resource, reason, budget))


@dataclass
class _Lease:
    """One run's hold on its mailbox: what it read, the lease it took, the position to store.

    Why one object: an idle mailbox (delta answers no change) costs three table requests, the
    fewest that keep the guarantees: the delta and lease rows read together (one range read), the
    lease taken (a conditional write: two instances never run one mailbox at once), and at the end
    one table transaction giving the lease back with the new position (only when it moved) and the
    run record. If the lease was lost meanwhile (it expired and another run took it), that
    transaction applies nothing and only the run record is written: the position is the other
    run's now."""

    store: AsyncSyncStateStore
    mailbox_id: str
    read: DeltaState = field(default_factory=DeltaState)
    etag: str | None = None  # our lease row's, once taken
    state: DeltaState | None = None  # the position to store (None: the run did not get that far)

    async def save(self, stats: RunStats) -> None:
        """`guarded_run`'s saver: the closing transaction, or the run record alone."""
        if self.etag is None:
            await self.store.save_run(stats)
            return
        moved = self.state if self.state is not None and self.state != self.read else None
        if not await self.store.close_delta(self.mailbox_id, self.etag, moved, stats):
            log.warning("delta lease of %s expired and another run took it: position not stored", self.mailbox_id)
            stats.error("the mailbox's lease expired during the run; the position was not stored")
            await self.store.save_run(stats)


async def delta_mailbox(services: Services, resource: Resource, reason: str, budget: Budget) -> RunStats:
    stats = RunStats(DELTA, resource.object_id, services.clock(), reason)
    run = MailboxRun(services, resource, stats, budget)
    lease = _Lease(services.astore.syncstate, resource.object_id)
    return await guarded_run(services, stats, lambda: _leased(run, lease), lease.save)


async def _leased(run: MailboxRun, lease: _Lease) -> str:
    """Run delta only while holding the mailbox's lease (a Table Storage row, so it holds across
    processes and instances): two runs following links of one mailbox would invalidate each
    other's sync state. Another holder means this run has nothing to do."""
    mailbox, owner, now = run.mailbox_id, uuid.uuid4().hex, run.services.clock()
    duration = timedelta(seconds=max(run.budget.remaining(), 0) + LEASE_MARGIN_SECONDS)
    rows = await lease.store.open_delta(mailbox)
    lease.read = rows.state
    lease.etag = await lease.store.take_lease(mailbox, rows.lease, owner, now, duration)
    if lease.etag is None:
        run.stats.round = "leased-elsewhere"
        return "skipped-leased"
    return await _delta(run, lease)


async def _delta(run: MailboxRun, lease: _Lease) -> str:
    services, mailbox = run.services, run.mailbox_id
    store = lease.store
    settings = services.settings
    now = services.clock()
    window = Window.around(now, settings.sync_days_back, settings.sync_days_forward)
    state = lease.read
    fresh_reason = state.fresh_round_due(now, window)
    if run.stats.reason in FULL_ROUND_REASONS:
        fresh_reason = "requested-" + run.stats.reason
    seen: set[str] = set()
    if fresh_reason:
        state = state.start_fresh(now, window)
        run.stats.round = fresh_reason
    elif state.fresh:
        run.stats.round = "full-listing-continued"
        seen = await store.seen(mailbox)
    else:
        run.stats.round = "incremental"
    full_listing = state.fresh

    try:
        state, finished, removed = await _follow(run, state, seen)
    except DeltaExpired:
        log.warning("delta token of %s expired: a fresh round, then a check of what it did not list", mailbox)
        run.stats.round = "token-expired"
        state, seen, full_listing = state.start_fresh(now, window), set(), True
        state, finished, removed = await _follow(run, state, seen)

    candidates: list[Link] = []
    if removed:
        gone, _ = await run.check_links(removed, prove_membership=True)
        candidates.extend(gone)
    empty_listing = False
    if finished and full_listing:
        if not seen:
            empty_listing = True  # the breaker trips if links exist
        else:
            links = await services.astore.links_of(mailbox)
            unseen = [link for link in links if digest(link.event_id) not in seen]
            if unseen:
                log.info("%d linked events of %s not listed by the full round: reading them", len(unseen), mailbox)
                gone, _ = await run.check_links(unseen, prove_membership=True)
                candidates.extend(gone)
    verdict = await run.delete_guarded(candidates, empty_listing=empty_listing)

    if full_listing:
        if finished:
            await store.clear_seen(mailbox)
        else:
            await store.save_seen(mailbox, seen)
    lease.state = state  # stored with the lease's release, in one transaction (_Lease.save)
    if verdict is not None and not verdict.allowed:
        return "breaker-tripped"
    return "completed" if finished else "paused"


async def _follow(run: MailboxRun, state: DeltaState, seen: set[str]) -> tuple[DeltaState, bool, list[Link]]:
    """Follow the round page by page until the deltaLink (finished) or the budget (paused).

    Three stages overlap, each on its own resource: the next page is fetched (one page ahead), this
    page's events are read from Graph ($batch), and the previous page's events go through the
    pipeline (Dime.Scheduler /import and the tables). A page is written only after the previous
    one is, and in page order, so everything a page's bookkeeping depends on (an event listed after
    it was reported @removed, a 404 among the reads) happens in the order Graph listed it. A paused
    round resumes from the nextLink of the last page written: the page read but not written is read
    again next run (at most one page of reads lost). Linked @removed ones are returned for a re-read.
    """
    services, mailbox = run.services, run.mailbox_id
    fresh = state.fresh
    link = state.next_link or (None if fresh else state.delta_link)
    window = state.window.iso() if state.window else None
    removed: dict[str, Link] = {}

    def fetch(link: str | None) -> asyncio.Task[Any]:
        run.stats.graph_requests += 1
        return asyncio.ensure_future(services.graph.calendar_delta(mailbox, link, None if link else window))

    async def write(page: DeltaPage, reads: EventReads) -> None:
        """One page, after the previous one: the pipeline, then its linked @removed ones."""
        gone = await run.apply_reads(reads)
        removed.update((link.event_id, link) for link in gone)
        for event_id in page.removed:
            linked = await services.astore.get_link(mailbox, event_id)
            if linked is not None:
                removed[event_id] = linked
            else:
                run.stats.skipped += 1  # never synchronised, or moved out of the window unseen: nothing to do

    ahead: asyncio.Task[Any] | None = fetch(link)
    writing: asyncio.Task[None] | None = None
    written: DeltaPage | None = None  # the page `writing` writes
    try:
        while ahead is not None:
            page = read_page(await ahead)
            ahead = None
            if page.next_link and not page.delta_link and not run.budget.expired():
                ahead = fetch(page.next_link)  # fetched while this page is read and the previous one written
            reads = await run.read_events(await _to_read(run, page.events))
            if writing is not None:
                await writing
                writing = None
                if run.budget.expired() and written is not None and written.next_link:
                    return state.paused_at(written.next_link), False, list(removed.values())
            run.stats.changes += len(page.events) + len(page.removed)
            if fresh:
                seen.update(digest(event["id"]) for event in page.events)
            for event in page.events:
                removed.pop(event["id"], None)
            writing, written = asyncio.ensure_future(write(page, reads)), page
            if page.delta_link:
                await writing
                return state.finished(page.delta_link), True, list(removed.values())
            if not page.next_link:
                raise SyncError(ErrorCode.GRAPH_REJECTED, "a delta page carried neither a nextLink nor a deltaLink")
            if ahead is None:
                await writing
                return state.paused_at(page.next_link), False, list(removed.values())
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        if ahead is not None and not ahead.done():
            ahead.cancel()
        for task in (ahead, writing):  # a page's write is never cut short: it runs to its end
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task


async def _to_read(run: MailboxRun, items: list[dict]) -> list[tuple[str, Link | None]]:
    """Delta items are signals, not content (partial, and their body format unverified): which
    ones must be read in full. Not those whose changeKey equals the link's (nothing changed), nor
    series masters (delta lists their instances itself)."""
    links = await run.links_for([item["id"] for item in items])
    out: list[tuple[str, Link | None]] = []
    for item, link in zip(items, links, strict=True):
        if item.get("type") == "seriesMaster" or unchanged(link, change_key_of(item)):
            run.stats.skipped += 1
            continue
        out.append((item["id"], link))
    return out
