"""Reads shared across messages: the `$batch` requests of one process and event loop, shared by
every caller and both kinds of read (events in full, calendarView proofs).

A packed message used to take its mailbox's 4 Graph slots for its own `$batch`, and the next
message of that busy mailbox queued behind it, although their reads fit in one request. Here every
read of a mailbox waits a short window (`WINDOW_SECONDS`), or until the mailbox has a slot free,
and then rides the next `$batch` with whatever else is pending (members of any mailboxes, at most
20). A mailbox never has more than 4 concurrent requests (Graph's Outlook limit,
https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits; a `$batch` holds
min(4, its members) of a mailbox's slots): the gateway's `MailboxLimit` enforces it, and a mailbox
whose slots our reads hold all gets no new request here until one returns. The same key asked twice
while pending is read once. Event reads and calendarView proofs ride the same requests (a
mailbox's slots are held once for both). One coalescer per event loop (futures belong to one loop)
and per Graph gateway, kept in a weak table so a finished loop leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from shared.adapters.graph import BatchAnswer

K = TypeVar("K", bound=tuple)

WINDOW_SECONDS = 0.002  # how long a read waits for company before its $batch leaves
MAILBOX_SLOTS = 4  # Graph: 4 concurrent requests per app per mailbox
BATCH_MEMBERS = 20  # Graph: members per $batch


class Coalescer(Generic[K]):
    """Pending reads, keyed (mailbox, ...), sent together in `$batch` requests."""

    def __init__(self, send: Callable[[list[K]], Awaitable[dict[K, BatchAnswer]]]) -> None:
        self._send = send
        self._pending: dict[K, asyncio.Future[BatchAnswer]] = {}
        self._in_flight: Counter[str] = Counter()  # mailbox → slots held by our requests
        self._flusher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.requests = 0  # $batch requests sent
        self.peak: Counter[str] = Counter()  # mailbox → most slots held at once

    async def ask(self, keys: list[K], *, first: bool = False) -> dict[K, BatchAnswer]:
        """The answers to these reads, each read in whatever `$batch` it rides. `first`: ahead of
        the reads already pending (a batch's last read, whose answer finishes work already begun)."""
        loop = asyncio.get_running_loop()
        futures: dict[K, asyncio.Future[BatchAnswer]] = {}
        new: dict[K, asyncio.Future[BatchAnswer]] = {}
        for key in keys:
            if key not in self._pending and key not in new:
                new[key] = loop.create_future()
            futures[key] = self._pending.get(key) or new[key]
        self._pending = {**new, **self._pending} if first else {**self._pending, **new}
        self._wake()
        answers = await asyncio.gather(*futures.values())
        return dict(zip(futures, answers, strict=True))

    def _wake(self) -> None:
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(WINDOW_SECONDS)
        while chosen := self._take():
            task = asyncio.ensure_future(self._run(*chosen))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _take(self) -> tuple[dict[K, asyncio.Future[BatchAnswer]], dict[str, int]] | None:
        """Up to 20 pending reads of mailboxes not busy (all 4 slots held by our requests: those
        wait and ride the next $batch). A mailbox with some slots held may join a batch that then
        waits for its slots in the gateway (`MailboxLimit`), so one mailbox's reads are never split
        across more requests than their count needs."""
        chosen: dict[K, asyncio.Future[BatchAnswer]] = {}
        members: Counter[str] = Counter()
        for key, future in self._pending.items():
            if len(chosen) == BATCH_MEMBERS:
                break
            mailbox = str(key[0])
            if self._in_flight[mailbox] < MAILBOX_SLOTS:
                chosen[key] = future
                members[mailbox] += 1
        if not chosen:
            return None
        for key in chosen:
            del self._pending[key]
        weights = {mailbox: min(MAILBOX_SLOTS, n) for mailbox, n in members.items()}
        for mailbox, weight in weights.items():
            self._in_flight[mailbox] += weight
            self.peak[mailbox] = max(self.peak[mailbox], self._in_flight[mailbox])
        return chosen, weights

    async def _run(self, chosen: dict[K, asyncio.Future[BatchAnswer]], weights: dict[str, int]) -> None:
        self.requests += 1
        try:
            answers = await self._send(list(chosen))
        except Exception as error:  # the envelope failed: every read of it fails alike
            for future in chosen.values():
                if not future.done():
                    future.set_exception(error)
        else:
            for key, future in chosen.items():
                if not future.done():
                    future.set_result(answers[key])
        finally:
            for mailbox, weight in weights.items():
                self._in_flight[mailbox] -= weight
            self._wake()


# What `shared` is asked for, as the gateway's member kinds (both ride the same requests).
_KINDS = {"read_events_batch": "event", "calendar_views_of": "view"}


class _Kind:
    """One kind of read through the loop's one coalescer of a Graph gateway: keys (mailbox, what)
    become (mailbox, kind, what), so event reads and calendarView proofs of one mailbox that are
    pending together ride one `$batch`, which holds the mailbox's slots once instead of twice."""

    def __init__(self, reads: Coalescer[Any], kind: str) -> None:
        self._reads = reads
        self._kind = kind

    async def ask(self, keys: list[tuple[str, Any]]) -> dict[tuple[str, Any], BatchAnswer]:
        tagged = [(mailbox, self._kind, what) for mailbox, what in keys]
        # A proof is the last read of its changes (their events were read): sent ahead of pending
        # event reads, it lets those changes finish (and their messages go) a $batch earlier.
        answers = await self._reads.ask(tagged, first=self._kind == "view")
        return {key: answers[t] for key, t in zip(keys, tagged, strict=True)}


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, tuple[Any, Coalescer[Any]]]] = (
    weakref.WeakKeyDictionary()
)


def shared(graph: Any, kind: str) -> _Kind:
    """This loop's reads of `graph` of one kind (`read_events_batch`: keys (mailbox, event id);
    `calendar_views_of`: keys (mailbox, (ISO start, end))), sharing `$batch` requests with every
    other caller and kind (`graph.reads_batch` sends them)."""
    table = _BY_LOOP.setdefault(asyncio.get_running_loop(), {})
    found = table.get(id(graph))
    if found is None or found[0] is not graph:
        found = (graph, Coalescer(graph.reads_batch))
        table[id(graph)] = found
    return _Kind(found[1], _KINDS[kind])
