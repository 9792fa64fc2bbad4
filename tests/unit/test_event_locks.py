"""EventLocks.hold_free: a caller taking many events at once never waits, so it cannot deadlock
with one that holds a lock and takes another inside it (a series master, then its instances)."""

from __future__ import annotations

import asyncio

from shared.usecases.event_locks import EventLocks


def test_hold_free_takes_the_free_keys_and_leaves_the_held_ones():
    locks = EventLocks()
    order: list[str] = []

    async def other(started: asyncio.Event, release: asyncio.Event) -> None:
        async with locks.hold(("m", "busy")):
            started.set()
            await release.wait()
            order.append("other done")

    async def main() -> set[tuple[str, str]]:
        started, release = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(other(started, release))
        await started.wait()
        async with locks.hold_free([("m", "a"), ("m", "busy"), ("m", "a"), ("m", "b")]) as taken:
            order.append("batch")
            waiter = asyncio.create_task(_take(locks, ("m", "a"), order))
            await asyncio.sleep(0)
            assert "a taken" not in order  # held by the batch until it leaves
        release.set()
        await asyncio.gather(task, waiter)
        return taken

    taken = asyncio.run(main())

    assert taken == {("m", "a"), ("m", "b")}
    assert order[0] == "batch" and set(order[1:]) == {"other done", "a taken"}
    assert locks._locks == {}  # nothing left behind


def test_a_key_someone_waits_for_is_not_taken_without_waiting():
    locks = EventLocks()

    async def main() -> set[tuple[str, str]]:
        release = asyncio.Event()

        async def holder() -> None:
            async with locks.hold(("m", "x")):
                await release.wait()

        first = asyncio.create_task(holder())
        second = asyncio.create_task(holder())  # queued behind the first
        await asyncio.sleep(0)
        async with locks.hold_free([("m", "x")]) as taken:
            pass
        release.set()
        await asyncio.gather(first, second)
        return taken

    assert asyncio.run(main()) == set()


async def _take(locks: EventLocks, key: tuple[str, str], order: list[str]) -> None:
    async with locks.hold(key):
        order.append("a taken")
