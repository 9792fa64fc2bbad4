"""Step 1 of the pipeline: read what the triage still needs, for all events of a batch at once.

Per round, every change's next need (`triage.needed`) is gathered and read together: the links of
all events of a mailbox in one go (a query per 14 events), series links, tombstones (one query per
mailbox), the events themselves (20 per Graph `$batch`, members of any mailboxes; a lone event is
one GET) and the primary-calendar proofs (calendarView members of a `$batch`). A failed read fails
only the changes it was for (transient: redelivered; permanent: a failed transaction).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from shared.core.outlook_to_dime.triage import Need, needed
from shared.core.proof_windows import merged_windows
from shared.core.resources import Resource
from shared.core.runs import RunStats
from shared.core.transactions import SyncError
from shared.services import Services
from shared.usecases.calendar_proof import in_primary_calendar, proof_range
from shared.usecases.outlook_to_dime.pipeline.coalesce import shared

if TYPE_CHECKING:
    from shared.adapters.graph import BatchAnswer
    from shared.adapters.storage.syncstate_store import SyncStateStore
    from shared.usecases.outlook_to_dime.pipeline.item import Item

log = logging.getLogger(__name__)

MEMBER_ATTEMPTS = 5  # a throttled $batch member is asked again up to this many times
MAX_RETRY_AFTER_SECONDS = 60.0
THROTTLED = (429, 503, 504)  # a $batch member answering these is asked again
K = TypeVar("K")  # what a $batch's members are keyed on

sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests may replace it


class Budget:
    """A run's deadline (monotonic): work stops at the next safe point once it has passed."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


def state_store(services: Services) -> SyncStateStore:
    """The syncstate table (delta position, runs, leases, tombstones)."""
    from shared.adapters.storage.syncstate_store import SyncStateStore

    return SyncStateStore(services.store)


# Reads of a resource row in flight on a loop, by (store, mailbox): a burst of messages of one
# mailbox (a queue receive hands out 32 at once) shares one read instead of one each. Joining a
# read that started a moment earlier is the same as having been delivered a moment earlier.
_RESOURCE_READS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, str], asyncio.Future[Any]]] = (
    weakref.WeakKeyDictionary()
)


async def read_resources(services: Services, mailboxes: Iterable[str]) -> dict[str, Resource | None]:
    """The resources (onboarded people) of these mailboxes, each row read once however many
    batches of this loop ask for it at the same moment."""
    store = services.astore
    in_flight = _RESOURCE_READS.setdefault(asyncio.get_running_loop(), {})

    async def one(mailbox: str) -> Resource | None:
        key = (id(store), mailbox)
        future = in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(store.get_resource(mailbox))
            in_flight[key] = future
            future.add_done_callback(lambda _: in_flight.pop(key, None))
        return await asyncio.shield(future)

    wanted = list(dict.fromkeys(mailboxes))
    return dict(zip(wanted, await asyncio.gather(*(one(m) for m in wanted)), strict=True))


def _items(page: dict | None) -> list[dict]:
    """The items of a collection page (none for a failed member)."""
    value = (page or {}).get("value")
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


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
        for got in await asyncio.gather(
            *(self.ask(shared(self.services.graph, "read_events_batch").ask, c) for c in chunks)
        ):
            answers.update(got)
        return answers

    async def prove_listed(self, events: list[tuple[str, dict]]) -> dict[tuple[str, str], bool | SyncError]:
        """`in_primary_calendar` for many (mailbox, event) in few requests: the calendarView of
        each event's own range as members of a $batch (20 per request; events of one mailbox
        whose ranges overlap share one listing of their union, `core/proof_windows.py`), then
        every id any page lists is proven (a calendarView
        lists the primary calendar only). An event a page with more pages did not list is looked
        for in the rest of that listing. Per (mailbox, event id): True, False (not listed, or no
        time range to look in), or the SyncError of a member that failed (throttled after its
        retries: transient)."""
        from shared.adapters.graph import BATCH_LIMIT, classify_status

        graph = self.services.graph
        own = {(mailbox, str(event.get("id"))): proof_range(event) for mailbox, event in events}
        ranges: dict[tuple[str, str], tuple[str, str] | None] = dict.fromkeys(own)
        for mailbox in {mailbox for mailbox, _ in own}:  # overlapping ranges of a mailbox: one listing
            windows = merged_windows([w for (m, _), w in own.items() if m == mailbox and w is not None])
            ranges.update({key: windows[w] for key, w in own.items() if key[0] == mailbox and w is not None})
        wheres = [(mailbox, where) for (mailbox, _), where in ranges.items() if where is not None]
        distinct = list(dict.fromkeys(wheres))
        chunks = [distinct[start : start + BATCH_LIMIT] for start in range(0, len(distinct), BATCH_LIMIT)]
        pages: dict[tuple[str, tuple[str, str]], BatchAnswer] = {}
        views = shared(graph, "calendar_views_of")  # shared with every caller of this loop
        for got in await asyncio.gather(*(self.ask(views.ask, chunk) for chunk in chunks)):
            pages.update(got)
        listed = {(mailbox, str(item.get("id"))) for (mailbox, _), page in pages.items() for item in _items(page.body)}
        # Listings with more pages than the first, continued (at once) for the events not yet seen.
        unseen = {
            (key[0], where): str((pages[(key[0], where)].body or {}).get("@odata.nextLink") or "")
            for key, where in ranges.items()
            if where is not None and key not in listed and pages[(key[0], where)].status == 200
        }
        unseen = {listing: link for listing, link in unseen.items() if link}
        self.stats.graph_requests += len(unseen)
        rest = await asyncio.gather(*(graph.calendar_view_ids(mailbox, link) for (mailbox, _), link in unseen.items()))
        continued = dict(zip(unseen, rest, strict=True))
        out: dict[tuple[str, str], bool | SyncError] = {}
        for key, where in ranges.items():
            mailbox, event_id = key
            page = pages.get((mailbox, where)) if where is not None else None
            if key in listed or page is None:
                out[key] = key in listed
            elif page.status == 200:
                out[key] = event_id in continued.get((mailbox, where), set())
            elif page.status == 404:
                out[key] = False  # no such calendar: listed nowhere (as in_primary_calendar)
            else:
                out[key] = classify_status(page.status, {"Retry-After": page.retry_after}, "calendar view")
        return out


async def read_needs(services: Services, batches: GraphBatches, items: list[Item]) -> None:
    """Read until every item of the batch needs nothing more (or failed): each round reads, for
    all items at once, what each still needs."""
    while True:
        wanting: dict[Need, list[Item]] = {}
        for item in items:
            if item.outcome is None and item.verdict is None:
                need = needed(item.change, item.known)
                if need is not None:
                    wanting.setdefault(need, []).append(item)
        if not wanting:
            return
        await asyncio.gather(
            *(_READERS[need](services, batches, group) for need, group in wanting.items()), return_exceptions=False
        )


def _by_mailbox(items: list[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.change.mailbox_id, []).append(item)
    return groups


async def _read_links(services: Services, batches: GraphBatches, items: list[Item]) -> None:
    """The links of a mailbox's events in one go (a point read for a lone one). Beside them, for
    several events new to us (to be proven), their tombstones in one query: an upsert clears a
    tombstone only where one exists, instead of a blind delete per event."""
    store = services.astore

    async def tombstones(mailbox: str, group: list[Item]) -> set[str] | None:
        new = [i.change.event_id for i in group if i.change.prove_new and i.known.tombstoned is None]
        if len(new) < 2:
            return None  # a lone event: the blind delete costs what the read would
        return await store.syncstate.tombstoned_among(mailbox, new)

    async def one_mailbox(mailbox: str, group: list[Item]) -> None:
        try:
            if len(group) == 1:
                link = await store.get_link(mailbox, group[0].change.event_id)
                found, tombstoned = ({group[0].change.event_id: link} if link else {}), None
            else:
                found, tombstoned = await asyncio.gather(
                    store.links_among(mailbox, [i.change.event_id for i in group]), tombstones(mailbox, group)
                )
        except SyncError as error:
            for item in group:
                item.fail(error)
            return
        for item in group:
            item.known.link, item.known.link_read = found.get(item.change.event_id), True
            if tombstoned is not None and item.change.prove_new and item.known.tombstoned is None:
                item.known.tombstoned = item.change.event_id in tombstoned

    await asyncio.gather(*(one_mailbox(mailbox, group) for mailbox, group in _by_mailbox(items).items()))


async def _read_series_links(services: Services, batches: GraphBatches, items: list[Item]) -> None:
    async def one(item: Item) -> None:
        change = item.change
        item.known.series_links = await services.astore.links_of_series(change.mailbox_id, change.event_id)

    await asyncio.gather(*(one(item) for item in items))


async def _read_tombstones(services: Services, batches: GraphBatches, items: list[Item]) -> None:
    """Whether we deleted these events' appointments before (one query per mailbox for many)."""
    store = services.astore.syncstate

    async def one_mailbox(mailbox: str, group: list[Item]) -> None:
        if len(group) == 1:
            tombstoned = (
                {group[0].change.event_id} if await store.is_tombstoned(mailbox, group[0].change.event_id) else set()
            )
        else:
            tombstoned = await store.tombstoned_events(mailbox)
        for item in group:
            item.known.tombstoned = item.change.event_id in tombstoned

    await asyncio.gather(*(one_mailbox(mailbox, group) for mailbox, group in _by_mailbox(items).items()))


async def _read_events(services: Services, batches: GraphBatches, items: list[Item]) -> None:
    """The events in full: one GET for a lone one, else 20 per $batch (throttled members again)."""
    from shared.adapters.graph import classify_status

    if len(items) == 1:
        item = items[0]
        batches.stats.graph_requests += 1
        try:
            event = await services.graph.get_event(item.change.mailbox_id, item.change.event_id)
        except SyncError as error:
            item.fail(error)
            return
        item.known.event, item.known.event_read = event, True
        return
    answers = await batches.read_events([item.change.key for item in items])
    for item in items:
        answer = answers[item.change.key]
        if answer.status == 200 and answer.body is not None:
            item.known.event, item.known.event_read = answer.body, True
        elif answer.status == 404:
            item.known.event, item.known.event_read = None, True
        else:
            item.fail(classify_status(answer.status, {"Retry-After": answer.retry_after}, "event read"))


async def _read_proofs(services: Services, batches: GraphBatches, items: list[Item]) -> None:
    """Whether the primary calendar lists the events (calendarView; one request for a lone one)."""
    if len(items) == 1:
        item = items[0]
        batches.stats.graph_requests += 1
        try:
            item.known.listed = await in_primary_calendar(services, item.change.mailbox_id, item.known.event or {})
        except SyncError as error:
            item.fail(error)
        return
    proofs = await batches.prove_listed([(item.change.mailbox_id, item.known.event or {}) for item in items])
    for item in items:
        proof = proofs.get((item.change.mailbox_id, str((item.known.event or {}).get("id"))), False)
        if isinstance(proof, SyncError):
            item.fail(proof)
        else:
            item.known.listed = proof


_READERS: dict[Need, Callable[[Services, GraphBatches, list[Item]], Awaitable[None]]] = {
    Need.LINK: _read_links,
    Need.SERIES_LINKS: _read_series_links,
    Need.TOMBSTONE: _read_tombstones,
    Need.EVENT: _read_events,
    Need.PROOF: _read_proofs,
}
