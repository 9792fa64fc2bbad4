"""The per-run request meter: counts only what the run itself (and its tasks and threads) sent."""

from __future__ import annotations

import asyncio

from shared.adapters.request_meter import count_dime, count_graph, metered


def test_a_run_counts_its_tasks_and_threads_and_nothing_of_other_work():
    async def child() -> None:
        await asyncio.sleep(0)
        count_graph()

    async def run() -> tuple[int, int]:
        with metered() as meter:
            count_graph()
            await asyncio.gather(*(child() for _ in range(3)))  # child tasks copy the context
            await asyncio.to_thread(count_dime)  # a sync adapter on a worker thread
            return meter.graph, meter.dime

    async def other_work() -> None:  # another invocation in the same process, at the same time
        for _ in range(5):
            count_graph()
            count_dime()
            await asyncio.sleep(0)

    async def both() -> tuple[int, int]:
        ours, _ = await asyncio.gather(run(), other_work())
        return ours

    assert asyncio.run(both()) == (4, 1)


def test_outside_a_run_nothing_is_counted_and_runs_do_not_share_a_meter():
    count_graph()  # no meter: a no-op
    with metered() as outer:
        count_graph()
        with metered() as inner:
            count_dime()
        count_graph()
    assert (outer.graph, outer.dime, inner.graph, inner.dime) == (2, 0, 0, 1)
