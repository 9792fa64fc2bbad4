"""What delta and reconcile share: running mailboxes concurrently within a time budget, applying a
change through the one sync path, checking linked events with $batch, and guarded deletes.

Every change goes through `sync_event`, the same decision and write path as the real-time worker.
Deletes inferred from absence (a 404, not listed by a full round) are collected first, decided as
a set by the circuit breaker, then executed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from shared.core.breaker import Verdict
from shared.core.decision import Action
from shared.core.events import EventFormatError, parse_graph_time
from shared.core.links import Link
from shared.core.outlook_to_dime.webhook import ChangeNotification
from shared.core.resources import Resource
from shared.core.runs import RunStats
from shared.core.transactions import SyncError
from shared.names import NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime.breaker_alerts import guarded
from shared.usecases.outlook_to_dime.sync_event import record_failure, sync_event

if TYPE_CHECKING:
    from shared.adapters.graph import BatchAnswer
    from shared.adapters.storage.syncstate_store import SyncStateStore

log = logging.getLogger(__name__)

RUN_BUDGET_SECONDS = 8 * 60  # the host stops a run at 10 minutes (host.json functionTimeout)
MAILBOX_CONCURRENCY = 8  # mailboxes processed at once (Graph's own limit is 4 requests per mailbox)
EVENT_CONCURRENCY = 8  # sync_event calls in flight per mailbox (tables and Dime.Scheduler only)
MEMBER_ATTEMPTS = 5  # a throttled $batch member is asked again up to this many times
MAX_RETRY_AFTER_SECONDS = 60.0

THROTTLED = (429, 503, 504)  # a $batch member answering these is asked again
K = TypeVar("K")  # what a $batch's members are keyed on

sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests may replace it


def _items(page: dict | None) -> list[dict]:
    """The items of a collection page (none for a failed member)."""
    value = (page or {}).get("value")
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


class Budget:
    """A run's deadline (monotonic): work stops at the next safe point once it has passed."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


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


@dataclass
class GraphBatches:
    """Reads and proofs of many events, 20 per $batch, of one mailbox or of several (JSON batching
    takes members addressing different users, each throttled on its own: a packed message's
    mailboxes share their requests). Keys are (mailbox, ...); a throttled member is asked again."""

    services: Services
    budget: Budget
    stats: RunStats  # counts the requests

    async def ask(
        self, send: Callable[[list[K]], Awaitable[dict[K, BatchAnswer]]], keys: list[K]
    ) -> dict[K, BatchAnswer]:
        """One $batch, then the throttled members again after their Retry-After (members are
        throttled one by one inside a 200, and no middleware retries them)."""
        answers: dict[K, BatchAnswer] = {}
        ask = keys
        for attempt in range(MEMBER_ATTEMPTS):
            self.stats.graph_requests += 1
            got = await send(ask)
            answers.update(got)
            throttled = [key for key in ask if got[key].status in THROTTLED]
            if not throttled or attempt == MEMBER_ATTEMPTS - 1:
                break
            wait = min(max((got[k].retry_after or 1.0) for k in throttled), MAX_RETRY_AFTER_SECONDS)
            if wait >= self.budget.remaining():
                break
            log.info("%d of %d $batch members throttled; again in %.0f s", len(throttled), len(ask), wait)
            await sleep(wait)
            ask = throttled
        return answers

    async def read_events(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], BatchAnswer]:
        """Read any number of (mailbox, event id), 20 per $batch (the batches concurrently: each
        mailbox's limit of 4 concurrent requests paces them)."""
        from shared.adapters.graph import BATCH_LIMIT

        chunks = [keys[start : start + BATCH_LIMIT] for start in range(0, len(keys), BATCH_LIMIT)]
        answers: dict[tuple[str, str], BatchAnswer] = {}
        for got in await asyncio.gather(*(self.ask(self.services.graph.read_events_batch, c) for c in chunks)):
            answers.update(got)
        return answers

    async def prove_listed(self, events: list[tuple[str, dict]]) -> dict[tuple[str, str], bool | SyncError]:
        """`in_primary_calendar` for many (mailbox, event) in few requests: the calendarView of
        each event's own range as members of a $batch (20 per request; events of one mailbox
        sharing a range share a member), then every id any page lists is proven (a calendarView
        lists the primary calendar only). An event a page with more pages did not list is looked
        for in the rest of that listing. Per (mailbox, event id): True, False (not listed, or no
        time range to look in), or the SyncError of a member that failed (throttled after its
        retries: transient)."""
        from shared.adapters.graph import BATCH_LIMIT, classify_status
        from shared.usecases.outlook_to_dime.sync_event import proof_range

        graph = self.services.graph
        ranges = {(mailbox, str(event.get("id"))): proof_range(event) for mailbox, event in events}
        wheres = [(mailbox, where) for (mailbox, _), where in ranges.items() if where is not None]
        distinct = list(dict.fromkeys(wheres))
        chunks = [distinct[start : start + BATCH_LIMIT] for start in range(0, len(distinct), BATCH_LIMIT)]
        pages: dict[tuple[str, tuple[str, str]], BatchAnswer] = {}
        for got in await asyncio.gather(*(self.ask(graph.calendar_views_of, chunk) for chunk in chunks)):
            pages.update(got)
        listed = {(mailbox, str(item.get("id"))) for (mailbox, _), page in pages.items() for item in _items(page.body)}
        continued: dict[tuple[str, tuple[str, str]], set[str]] = {}
        out: dict[tuple[str, str], bool | SyncError] = {}
        for key, where in ranges.items():
            mailbox, event_id = key
            page = pages.get((mailbox, where)) if where is not None else None
            if key in listed or page is None:
                out[key] = key in listed
            elif page.status == 200:
                next_link = (page.body or {}).get("@odata.nextLink")
                if next_link and (mailbox, where) not in continued:
                    self.stats.graph_requests += 1
                    continued[(mailbox, where)] = await graph.calendar_view_ids(mailbox, str(next_link))
                out[key] = event_id in continued.get((mailbox, where), set())
            elif page.status == 404:
                out[key] = False  # no such calendar: listed nowhere (as in_primary_calendar)
            else:
                out[key] = classify_status(page.status, {"Retry-After": page.retry_after}, "calendar view")
        return out


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
        without the breaker), and one without readable times to sync_event, which reports it."""
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
    """One mailbox's run: its figures, and a bound on its concurrent sync_event calls."""

    services: Services
    resource: Resource
    stats: RunStats
    budget: Budget
    _limit: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(EVENT_CONCURRENCY))
    _links: dict[str, Link] | None = None
    # Events that answered GET but the calendar no longer lists (a copy a race left on the board):
    # their deletes count as healed in the run record.
    _healing: set[str] = field(default_factory=set)

    @property
    def mailbox_id(self) -> str:
        return self.resource.object_id

    async def links_for(self, event_ids: list[str]) -> list[Link | None]:
        """The links of a page's events: point reads for a few, else the mailbox's links read
        once per run (one partition query instead of a read per event, e.g. a full listing). A
        link written meanwhile by another path is met again where it matters: a batch insert
        conflicts and those events go through sync_event, which reads the link itself."""
        store = self.services.store
        if len(event_ids) < LINK_SNAPSHOT_MIN and self._links is None:
            return list(
                await asyncio.gather(*(asyncio.to_thread(store.get_link, self.mailbox_id, e) for e in event_ids))
            )
        if self._links is None:
            links = await asyncio.to_thread(lambda: list(store.links_of(self.mailbox_id)))
            self._links = {link.event_id: link for link in links}
        return [self._links.get(event_id) for event_id in event_ids]

    async def apply(
        self,
        event_id: str,
        *,
        event_json: dict | None = None,
        deleted: bool = False,
        change_key: str | None = None,
        link: Link | None = None,
    ) -> None:
        """sync_event for one event; a failure never stops the run and is never dropped:
        transient ones go to the notification queue (retried, then poisoned), permanent ones
        become a failed transaction an administrator can see and retry."""
        async with self._limit:
            try:
                decision = await sync_event(
                    self.services,
                    self.resource,
                    event_id,
                    event_json=event_json,
                    deleted=deleted,
                    link_read=link,
                    breaker_passed=deleted,  # deletes from a run were decided as a set (delete_guarded)
                )
            except SyncError as error:
                await self._failed(event_id, deleted, change_key, error)
                return
        if decision.action is Action.UPSERT:
            self.stats.writes += 1
        elif decision.action is Action.DELETE:
            self.stats.deletes += 1
            if event_id in self._healing:
                self.stats.healed += 1
        else:
            self.stats.skipped += 1

    async def apply_all(self, coroutines: Iterable[Awaitable[None]]) -> None:
        await asyncio.gather(*coroutines)

    async def _failed(self, event_id: str, deleted: bool, change_key: str | None, error: SyncError) -> None:
        self.stats.error(f"{event_id[-12:]}: {error}")
        change = ChangeNotification(
            self.mailbox_id, event_id, "deleted" if deleted else "updated", None if deleted else change_key, ""
        )
        if error.code.transient:
            log.warning("event %s of %s: %s; queued for the worker", event_id[-12:], self.mailbox_id, error)
            await asyncio.to_thread(self.services.queues.send, NOTIFICATIONS_QUEUE, change.to_message())
        else:
            await asyncio.to_thread(record_failure, self.services, change, error, change.to_message())

    # Checking linked events with $batch ------------------------------------------------------

    async def check_links(
        self, links: list[Link], *, prove_membership: bool = False, listing: WindowListing | None = None
    ) -> tuple[list[Link], int]:
        """Re-read linked events, 20 per $batch, and bring every one that exists through sync_event.

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
        pending: list[asyncio.Task[None]] = []
        handled = 0
        for start in range(0, len(links), BATCH_LIMIT):
            if start and self.budget.expired():
                break  # at least one $batch per call, so every run makes progress
            chunk = links[start : start + BATCH_LIMIT]
            answers = await self._read_batch([link.event_id for link in chunk])
            unresolved = False
            for link in chunk:
                answer = answers.get(link.event_id)
                if answer is None or answer.status in THROTTLED:
                    unresolved = True
                    break
            if unresolved:
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
                    change_key = answer.body.get("changeKey")
                    pending.append(
                        asyncio.create_task(
                            self.apply(link.event_id, event_json=answer.body, change_key=change_key, link=link)
                        )
                    )
                elif answer.status == 404:
                    missing.append(link)
                else:
                    self.stats.error(f"{link.event_id[-12:]}: Graph answered {answer.status} to the event read")
            handled = start + len(chunk)
        await asyncio.gather(*pending)
        return missing, handled

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
        """Delta items are signals: read each event in full (20 per $batch) and bring it through
        sync_event; events never linked go as one batch (`sync_batch`: one import, one table batch
        of links) once the page is read. Returns the links of events that are gone (404). A member
        Graph kept throttling goes to the notification queue, like any transient failure of a run."""
        from shared.adapters.graph import BATCH_LIMIT

        missing: list[Link] = []
        pending: list[asyncio.Task[None]] = []
        new: list[dict] = []
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            answers = await self._read_batch([event_id for event_id, _ in chunk])
            for event_id, link in chunk:
                answer = answers[event_id]
                if answer.status == 200 and answer.body is not None and link is None:
                    new.append(answer.body)
                elif answer.status == 200 and answer.body is not None:
                    body = answer.body
                    pending.append(
                        asyncio.create_task(
                            self.apply(event_id, event_json=body, change_key=body.get("changeKey"), link=link)
                        )
                    )
                elif answer.status == 404:
                    if link is not None:
                        missing.append(link)
                    else:
                        self.stats.skipped += 1
                else:
                    from shared.adapters.graph import classify_status

                    error = classify_status(answer.status, {"Retry-After": answer.retry_after}, "event read")
                    await self._failed(event_id, False, None, error)
        pending.extend(
            asyncio.create_task(self.apply(e["id"], event_json=e, change_key=e.get("changeKey")))
            for e in await self._apply_new(new)
        )
        await asyncio.gather(*pending)
        return missing

    async def _apply_new(self, events: list[dict]) -> list[dict]:
        """Events never linked, as one batch; returns those to bring through sync_event one by one."""
        from shared.usecases.outlook_to_dime.sync_batch import sync_new_events

        if len(events) < 2:
            return events
        outcome = await sync_new_events(self.services, self.resource, events)
        for decision in outcome.decisions.values():
            if decision.action is Action.UPSERT:
                self.stats.writes += 1
            else:
                self.stats.skipped += 1
        by_id = {str(event.get("id")): event for event in events}
        return [by_id[event_id] for event_id in outcome.one_by_one]

    async def _read_batch(self, event_ids: list[str]) -> dict[str, BatchAnswer]:
        """One $batch of event reads, then the throttled members again (`GraphBatches.ask`)."""
        mailbox = self.mailbox_id
        answers = await self.batches.ask(self.services.graph.read_events_batch, [(mailbox, e) for e in event_ids])
        return {event_id: answers[(mailbox, event_id)] for event_id in event_ids}

    @property
    def batches(self) -> GraphBatches:
        """The mailbox's $batch requests, counted in its run's figures."""
        return GraphBatches(self.services, self.budget, self.stats)

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
        await self.apply_all(self.apply(link.event_id, deleted=True, link=link) for link in unique)
        return verdict


async def guarded_run(
    services: Services, stats: RunStats, work: Callable[[], Awaitable[str]], store: SyncStateStore
) -> RunStats:
    """Run one mailbox's work, turning any failure into a recorded outcome, and save the record."""
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
        await asyncio.to_thread(store.save_run, stats)
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
