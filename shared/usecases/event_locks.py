"""Per-key asyncio locks, shared by both directions' workers within one process.

An optimisation only: several instances run at once in production, and there the
etag-conditional link row decides who wins. Within one process, taking turns lets duplicate
messages see the first one's link and skip instead of all writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

Key = tuple[str, str]


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters: the entry goes when the last one leaves


class EventLocks:
    """Serialises work on one event within one event loop.

    Graph often sends three notifications for one edit and the host hands them to us at once
    (host.json batchSize); taking turns lets the second and third see the first one's link and
    skip, instead of all three writing. Across instances the etag-conditional link decides.

    An asyncio lock belongs to one event loop, and a process may run several (the Functions worker
    and a test harness each start their own; threads run their own). So there is one table per
    running loop: a loop never sees, drops or releases another loop's locks (each loop's holders keep
    their mutual exclusion whatever the others do), a key's entry goes when its last user leaves, and
    a loop's table goes with the loop (weakly keyed), so nothing leaks. Work on one key from two loops
    is not serialised, exactly as across instances: the etag decides.
    """

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, _Entry]] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()  # loops of several threads add their tables concurrently

    def _table(self) -> dict[Key, _Entry]:
        loop = asyncio.get_running_loop()
        with self._guard:
            table = self._tables.get(loop)
            if table is None:
                table = self._tables[loop] = {}
            return table

    def held(self) -> int:
        """Keys held or waited for, over every live loop (diagnostics; the tests check for leaks)."""
        with self._guard:
            return sum(len(table) for table in self._tables.values())

    def loops(self) -> int:
        """Loops with a table: a closed, collected loop's table is gone."""
        with self._guard:
            return len(self._tables)

    @staticmethod
    def _leave(table: dict[Key, _Entry], key: Key, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0 and table.get(key) is entry:
            del table[key]

    @contextlib.asynccontextmanager
    async def hold(self, key: Key) -> AsyncIterator[None]:
        table = self._table()
        entry = table.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            self._leave(table, key, entry)

    @contextlib.asynccontextmanager
    async def hold_free(self, keys: Iterable[Key]) -> AsyncIterator[set[Key]]:
        """Take the locks of those keys nobody holds or waits for, without waiting; yields the
        keys taken. Never waiting while holding is what keeps a caller that takes many from
        deadlocking with one that takes them one inside another (a series master, then its
        instances); the keys left out are the caller's to handle through `hold`."""
        table = self._table()
        taken: list[tuple[Key, _Entry]] = []
        try:
            for key in dict.fromkeys(keys):
                if key in table:
                    continue
                entry = table[key] = _Entry(users=1)
                await entry.lock.acquire()  # a new lock: taken at once
                taken.append((key, entry))
            yield {key for key, _ in taken}
        finally:
            for key, entry in taken:
                entry.lock.release()
                self._leave(table, key, entry)


event_locks = EventLocks()
