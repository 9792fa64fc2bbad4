"""What delta and reconcile share: running mailboxes concurrently within a time budget, a run's
figures and its record (`guarded_run`), and `MailboxRun`, which brings a run's changes through the
pipeline. Its event re-reads with $batch are in link_checks.py, its guarded deletes in
guarded_deletes.py (mixins of `MailboxRun`).

Every change a run finds goes through the one pipeline (`shared.usecases.outlook_to_dime.pipeline`),
a page at a time, the same read, decision and write path as the real-time worker. Deletes inferred
from absence (a 404, not listed by a full round) are collected first, decided as a set by the
circuit breaker, then executed as one batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from shared.core.decision import Action
from shared.core.links import Link
from shared.core.outlook_to_dime.triage import Change, as_message
from shared.core.resources import Resource
from shared.core.runs import RunStats
from shared.core.transactions import SyncError
from shared.names import NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime import pipeline
from shared.usecases.outlook_to_dime.guarded_deletes import GuardedDeletes
from shared.usecases.outlook_to_dime.link_checks import EventReads, LinkChecks, WindowListing
from shared.usecases.outlook_to_dime.pipeline.read import Budget, GraphBatches, state_store
from shared.usecases.outlook_to_dime.pipeline.remember import record_failures

log = logging.getLogger(__name__)

RUN_BUDGET_SECONDS = 8 * 60  # the host stops a run at 10 minutes (host.json functionTimeout)
MAILBOX_CONCURRENCY = 8  # mailboxes processed at once (Graph's own limit is 4 requests per mailbox)

__all__ = ["Budget", "EventReads", "MailboxRun", "WindowListing", "for_each_mailbox", "guarded_run", "state_store"]


async def for_each_mailbox(
    resources: Iterable[Resource],
    work: Callable[[Resource], Awaitable[RunStats]],
    concurrency: int = MAILBOX_CONCURRENCY,
) -> list[RunStats]:
    limit = asyncio.Semaphore(concurrency)

    async def one(resource: Resource) -> RunStats:
        async with limit:
            return await work(resource)

    return list(await asyncio.gather(*(one(resource) for resource in resources)))


LINK_SNAPSHOT_MIN = 20  # a page with this many events reads the mailbox's links in one query


@dataclass
class MailboxRun(LinkChecks, GuardedDeletes):
    """One mailbox's run: its figures, its budget, and its changes brought through the pipeline."""

    services: Services
    resource: Resource
    stats: RunStats
    budget: Budget
    _links: dict[str, Link] | None = None
    # Events that answered GET but the calendar no longer lists (a copy a race left on the board):
    # their deletes count as healed in the run record.
    _healing: set[str] = field(default_factory=set)

    @property
    def mailbox_id(self) -> str:
        return self.resource.object_id

    @property
    def batches(self) -> GraphBatches:
        """The mailbox's $batch requests, counted in its run's figures."""
        return GraphBatches(self.services, self.budget, self.stats)

    async def links_for(self, event_ids: list[str]) -> list[Link | None]:
        """The links of a page's events: point reads for a few, else the mailbox's links read
        once per run (one partition query instead of a read per event, e.g. a full listing). A
        link written meanwhile by another path is met again where it matters: its etag-conditional
        write conflicts and the pipeline reads it and decides again."""
        store = self.services.astore
        if len(event_ids) < LINK_SNAPSHOT_MIN and self._links is None:
            return list(await asyncio.gather(*(store.get_link(self.mailbox_id, e) for e in event_ids)))
        if self._links is None:
            links = await store.links_of(self.mailbox_id)
            self._links = {link.event_id: link for link in links}
        return [self._links.get(event_id) for event_id in event_ids]

    async def apply(self, changes: list[Change]) -> None:
        """The run's changes as one pipeline batch; a failure never stops the run and is never
        dropped: transient ones go to the notification queue (retried, then poisoned), permanent
        ones become a failed transaction an administrator can see and retry."""
        if not changes:
            return
        outcomes = await pipeline.run(
            self.services, changes, resources={self.mailbox_id: self.resource}, batches=self.batches
        )
        permanent: list[tuple[Change, SyncError]] = []
        for change, outcome in zip(changes, outcomes, strict=True):
            if outcome.error is not None:
                self.stats.error(f"{change.event_id[-12:]}: {outcome.error}")
                if outcome.error.code.transient:
                    log.warning(
                        "event %s of %s: %s; queued for the worker",
                        change.event_id[-12:],
                        self.mailbox_id,
                        outcome.error,
                    )
                    await self.services.aqueues.send(NOTIFICATIONS_QUEUE, as_message(change))
                else:
                    permanent.append((change, outcome.error))
            elif outcome.decision is not None and outcome.decision.action is Action.UPSERT:
                self.stats.writes += 1
            elif outcome.decision is not None and outcome.decision.action is Action.DELETE:
                self.stats.deletes += 1
                if change.event_id in self._healing:
                    self.stats.healed += 1
            else:
                self.stats.skipped += 1
        await record_failures(self.services, permanent)


async def guarded_run(
    services: Services,
    stats: RunStats,
    work: Callable[[], Awaitable[str]],
    save: Callable[[RunStats], Awaitable[None]] | None = None,
) -> RunStats:
    """Run one mailbox's work, turning any failure into a recorded outcome, and save the record
    (`save`: the run's own way of writing it, e.g. delta's one transaction with its lease and
    position; by default the run record row alone)."""
    try:
        outcome = await work()
    except SyncError as error:
        stats.error(str(error))
        outcome = "failed"
    except Exception as error:  # one mailbox must never stop the others
        log.exception("%s run of %s failed", stats.kind, stats.mailbox_id)
        stats.error(f"{type(error).__name__}: {error}")
        outcome = "failed"
    stats.finish(outcome, services.clock())
    try:
        await (save or services.astore.syncstate.save_run)(stats)
    except Exception:
        log.exception("could not save the %s run record of %s", stats.kind, stats.mailbox_id)
    log.info(
        "%s %s: %s, %d changes, %d writes, %d deletes, %d errors, %d Graph requests, %d ms",
        stats.kind,
        stats.mailbox_id,
        stats.outcome,
        stats.changes,
        stats.writes,
        stats.deletes,
        stats.errors,
        stats.graph_requests,
        stats.duration_ms,
    )
    return stats
