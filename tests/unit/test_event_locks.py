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
    assert locks.held() == 0  # nothing left behind


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


def test_another_loop_neither_drops_nor_shares_this_loops_locks():
    """A second event loop (another thread's) taking the same key meanwhile: this loop's holder keeps
    its mutual exclusion, and its release finds its own lock (the old single table was reset by
    every loop change: the next caller here walked in beside the holder)."""
    import threading

    locks = EventLocks()
    key = ("m", "e")
    order: list[str] = []

    def other_loop() -> None:
        async def visit() -> None:
            async with locks.hold(key):  # not blocked by the other loop's holder: its own table
                order.append("other loop")

        asyncio.run(visit())

    async def main() -> None:
        release = asyncio.Event()

        async def holder() -> None:
            async with locks.hold(key):
                order.append("holder in")
                await release.wait()
                order.append("holder out")

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        thread = threading.Thread(target=other_loop)
        thread.start()
        thread.join()
        second = asyncio.create_task(_take(locks, key, order))
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["holder in", "other loop"]  # the second waits for the first
        release.set()
        await asyncio.gather(first, second)

    asyncio.run(main())
    assert order == ["holder in", "other loop", "holder out", "a taken"]
    assert locks.held() == 0


def test_a_finished_loop_leaves_nothing_behind():
    import gc

    locks = EventLocks()

    async def work(n: int) -> None:
        async with locks.hold(("m", str(n))), locks.hold_free([("m", "free")]):
            await asyncio.sleep(0)

    for n in range(3):
        asyncio.run(work(n))
    gc.collect()
    assert (locks.held(), locks.loops()) == (0, 0)
