"""What delta and reconcile share: running mailboxes concurrently within a time budget, a run's
figures and record, checking linked events with $batch, and guarded deletes.

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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.core.breaker import Verdict
from shared.core.decision import Action
from shared.core.events import EventFormatError, parse_graph_time
from shared.core.links import Link
from shared.core.outlook_to_dime.triage import Change, as_message
from shared.core.resources import Resource
from shared.core.runs import RunStats
from shared.core.transactions import SyncError
from shared.names import NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime import pipeline
from shared.usecases.outlook_to_dime.breaker_alerts import guarded
from shared.usecases.outlook_to_dime.pipeline.coalesce import shared
from shared.usecases.outlook_to_dime.pipeline.read import THROTTLED, Budget, GraphBatches, state_store
from shared.usecases.outlook_to_dime.pipeline.remember import record_failures

if TYPE_CHECKING:
    from shared.adapters.graph import BatchAnswer

log = logging.getLogger(__name__)

RUN_BUDGET_SECONDS = 8 * 60  # the host stops a run at 10 minutes (host.json functionTimeout)
MAILBOX_CONCURRENCY = 8  # mailboxes processed at once (Graph's own limit is 4 requests per mailbox)

__all__ = ["Budget", "MailboxRun", "WindowListing", "for_each_mailbox", "guarded_run", "state_store"]


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


@dataclass(frozen=True)
class WindowListing:
    """The ids the primary calendar lists over a window (calendarView, ids only, read once per
    reconcile run): the proof, for many events at once, that a GET answering 200 cannot give."""

    ids: set[str]
    start: datetime
    end: datetime

    def disowns(self, event_json: dict) -> bool:
        """Whether the calendar no longer lists an event that, by its own times, lies well inside
        the window (a day from either edge, so all-day events and zones cannot make it miss). An
        event near or outside the edges is left to the decision (outside the window: a delete
        without the breaker), and one without readable times to the pipeline, which reports it."""
        if str(event_json.get("id")) in self.ids:
            return False
        try:
            all_day = bool(event_json.get("isAllDay"))
            start = parse_graph_time(event_json.get("start"), all_day=all_day)
            end = parse_graph_time(event_json.get("end"), all_day=all_day)
        except EventFormatError:
            return False
        return start >= self.start + timedelta(days=1) and end <= self.end - timedelta(days=1)


LINK_SNAPSHOT_MIN = 20  # a page with this many events reads the mailbox's links in one query


@dataclass
class MailboxRun:
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

    # Checking linked events with $batch ------------------------------------------------------

    async def check_links(
        self, links: list[Link], *, prove_membership: bool = False, listing: WindowListing | None = None
    ) -> tuple[list[Link], int]:
        """Re-read linked events, 20 per $batch, and bring every one that exists through the pipeline
        (one batch for all of them).

        Returns the links whose event is gone (404: candidates for a guarded delete) and how many
        of `links`, in order, were fully handled (fewer when the budget ran out or Graph kept
        throttling: the caller continues from there next time). prove_membership: the events are
        suspected gone (delta said @removed, a full round did not list them): a 200 is not proof
        that an event is still in the calendar (a deleted one may still be readable), so those
        answering 200 must also be listed by the primary calendar over their own time range.
        listing: what the primary calendar lists over the whole window, read once by the caller
        (the reconcile): an event answering 200 that it no longer lists is gone as well.
        """
        from shared.adapters.graph import BATCH_LIMIT

        missing: list[Link] = []
        changes: list[Change] = []
        handled = 0
        for start in range(0, len(links), BATCH_LIMIT):
            if start and self.budget.expired():
                break  # at least one $batch per call, so every run makes progress
            chunk = links[start : start + BATCH_LIMIT]
            answers = await self._read_batch([link.event_id for link in chunk])
            if any(answers.get(link.event_id) is None or answers[link.event_id].status in THROTTLED for link in chunk):
                self.stats.error(f"Graph kept throttling a $batch of {len(chunk)} event reads; continuing next run")
                break
            proven = await self._listed([answers[link.event_id] for link in chunk]) if prove_membership else {}
            for link in chunk:
                answer = answers[link.event_id]
                if answer.status == 200 and answer.body is not None:
                    event_id = str(answer.body.get("id"))
                    if (prove_membership and not proven.get(event_id)) or (listing and listing.disowns(answer.body)):
                        missing.append(link)
                        self._healing.add(link.event_id)
                        continue
                    changes.append(self._change(link.event_id, answer.body, link))
                elif answer.status == 404:
                    missing.append(link)
                else:
                    self.stats.error(f"{link.event_id[-12:]}: Graph answered {answer.status} to the event read")
            handled = start + len(chunk)
        await self.apply(changes)
        return missing, handled

    def _change(self, event_id: str, body: dict, link: Link | None) -> Change:
        return Change(
            self.mailbox_id, event_id, change_key=body.get("changeKey"), event_json=body, link=link, link_known=True
        )

    async def _listed(self, answers: list[BatchAnswer]) -> dict[str, bool]:
        """Which of the events read (200) the primary calendar lists (`prove_listed`); a proof
        that failed fails the run, as a failed read does (the run is taken up again next time)."""
        events = [answer.body for answer in answers if answer.status == 200 and answer.body is not None]
        proofs = await self.prove_listed(events) if events else {}
        for proof in proofs.values():
            if isinstance(proof, SyncError):
                raise proof
        return {event_id: proof is True for event_id, proof in proofs.items()}

    async def read_and_apply(self, items: list[tuple[str, Link | None]]) -> list[Link]:
        """Delta items are signals: read each event in full (20 per $batch) and bring them all
        through the pipeline as one batch. Returns the links of events that are gone (404). A
        member Graph kept throttling goes to the notification queue, like any transient failure."""
        from shared.adapters.graph import BATCH_LIMIT, classify_status

        missing: list[Link] = []
        changes: list[Change] = []
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            answers = await self._read_batch([event_id for event_id, _ in chunk])
            for event_id, link in chunk:
                answer = answers[event_id]
                if answer.status == 200 and answer.body is not None:
                    changes.append(self._change(event_id, answer.body, link))
                elif answer.status == 404:
                    if link is not None:
                        missing.append(link)
                    else:
                        self.stats.skipped += 1
                else:
                    error = classify_status(answer.status, {"Retry-After": answer.retry_after}, "event read")
                    change = Change(self.mailbox_id, event_id)
                    self.stats.error(f"{event_id[-12:]}: {error}")
                    if error.code.transient:
                        await self.services.aqueues.send(NOTIFICATIONS_QUEUE, as_message(change))
                    else:
                        await record_failures(self.services, [(change, error)])
        await self.apply(changes)
        return missing

    async def _read_batch(self, event_ids: list[str]) -> dict[str, BatchAnswer]:
        """One $batch of event reads, then the throttled members again (`GraphBatches.ask`)."""
        mailbox = self.mailbox_id
        reads = shared(self.services.graph, "read_events_batch")
        answers = await self.batches.ask(reads.ask, [(mailbox, e) for e in event_ids])
        return {event_id: answers[(mailbox, event_id)] for event_id in event_ids}

    async def prove_listed(self, events: list[dict]) -> dict[str, bool | SyncError]:
        """`GraphBatches.prove_listed` for this mailbox's events."""
        proofs = await self.batches.prove_listed([(self.mailbox_id, event) for event in events])
        return {event_id: proof for (_, event_id), proof in proofs.items()}

    # Guarded deletes -------------------------------------------------------------------------

    async def delete_guarded(self, candidates: list[Link], *, empty_listing: bool = False) -> Verdict | None:
        """Delete the events known to be gone, unless the breaker forbids the set as a whole."""
        unique = list({link.event_id: link for link in candidates}.values())
        if not unique and not empty_listing:
            return None
        verdict, message = await guarded(
            self.services, self.mailbox_id, self.stats.kind, unique, empty_listing=empty_listing
        )
        if not verdict.allowed:
            self.stats.breaker = message
            return verdict
        await self.apply(
            [
                Change(self.mailbox_id, link.event_id, gone=True, link=link, link_known=True, breaker_passed=True)
                for link in unique
            ]
        )
        return verdict


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
