"""Checking a mailbox's linked events with Graph `$batch` (delta and reconcile runs): re-read them 20
per request, prove that those answering 200 are still in the primary calendar when they are
suspected gone, and bring every one that exists through the pipeline as one batch. What is gone
comes back to the caller, which deletes it through the breaker (guarded_deletes.py).

A mixin of `MailboxRun` (mailbox_runs.py): it uses the run's services, figures, budget and
`apply`, and holds no state of its own beyond the run's `_healing` set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.core.events import EventFormatError, parse_graph_time
from shared.core.links import Link
from shared.core.outlook_to_dime.triage import Change, as_message
from shared.core.runs import RunStats
from shared.core.transactions import SyncError
from shared.names import NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime.pipeline.coalesce import shared
from shared.usecases.outlook_to_dime.pipeline.read import THROTTLED, Budget, GraphBatches
from shared.usecases.outlook_to_dime.pipeline.remember import record_failures

if TYPE_CHECKING:
    from shared.adapters.graph import BatchAnswer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventReads:
    """A page's events as Graph answered their reads (event id, its link, the answer), not yet acted on."""

    answers: list[tuple[str, Link | None, BatchAnswer]]


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


class LinkChecks:
    """`MailboxRun`'s event re-reads ($batch) and proofs of calendar membership."""

    services: Services
    stats: RunStats
    budget: Budget
    _healing: set[str]

    @property
    def mailbox_id(self) -> str:
        raise NotImplementedError  # MailboxRun's

    @property
    def batches(self) -> GraphBatches:
        raise NotImplementedError  # MailboxRun's

    async def apply(self, changes: list[Change]) -> None:
        raise NotImplementedError  # MailboxRun's

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
        through the pipeline as one batch. Returns the links of events that are gone (404)."""
        return await self.apply_reads(await self.read_events(items))

    async def read_events(self, items: list[tuple[str, Link | None]]) -> EventReads:
        """Read each event in full, 20 per $batch, all of a page's batches asked at once (the
        shared coalescer and the gateway's 4 slots per mailbox pace them, so the mailbox's slots
        never idle between two batches of one page). Only Graph is asked: what the reads mean is
        acted on by `apply_reads`, so a caller may read the next page while this one is written."""
        answers = await self.batches.read_events([(self.mailbox_id, event_id) for event_id, _ in items])
        return EventReads([(event_id, link, answers[(self.mailbox_id, event_id)]) for event_id, link in items])

    async def apply_reads(self, reads: EventReads) -> list[Link]:
        """Bring the events read (`read_events`) through the pipeline as one batch. Returns the links
        of events that are gone (404). A member Graph kept throttling goes to the notification
        queue, like any transient failure; a permanent one becomes a failed transaction."""
        from shared.adapters.graph import classify_status

        missing: list[Link] = []
        changes: list[Change] = []
        for event_id, link, answer in reads.answers:
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
