"""Per-key asyncio locks, shared by both directions' workers within one process.

An optimisation only: several instances run at once in production, and there the
etag-conditional link row decides who wins. Within one process, taking turns lets duplicate
messages see the first one's link and skip instead of all writing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable


class EventLocks:
    """Serialises work on one event within this process.

    Graph often sends three notifications for one edit and the host hands them to us at once
    (host.json batchSize); taking turns lets the second and third see the first one's link and
    skip, instead of all three writing. Across instances the etag-conditional link decides.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # locks belong to one event loop
            self._loop, self._locks = loop, {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        self._bind()
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def hold_free(self, keys: Iterable[tuple[str, str]]) -> AsyncIterator[set[tuple[str, str]]]:
        """Take the locks of those keys nobody holds or waits for, without waiting; yields the
        keys taken. Never waiting while holding is what keeps a caller that takes many from
        deadlocking with one that takes them one inside another (a series master, then its
        instances); the keys left out are the caller's to handle through `hold`."""
        self._bind()
        taken: list[tuple[str, str]] = []
        try:
            for key in dict.fromkeys(keys):
                if key in self._locks:
                    continue
                lock = asyncio.Lock()
                self._locks[key] = (lock, 1)
                await lock.acquire()  # a new lock: taken at once
                taken.append(key)
            yield set(taken)
        finally:
            for key in taken:
                lock, users = self._locks[key]
                lock.release()
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


event_locks = EventLocks()
