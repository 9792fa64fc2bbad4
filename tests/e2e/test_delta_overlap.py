"""A delta round (a backfill) overlaps its waits: the next page's events are read from Graph while the
previous page is written (Dime.Scheduler /import, links, transactions), the pages are written one
after the other in Graph's order, and a round paused between the two loses only the page it read
but did not write (the next run reads it again from the saved nextLink)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from shared.adapters.graph import EVENT_READ
from shared.usecases.outlook_to_dime import pipeline
from shared.usecases.outlook_to_dime.delta_sync import run_delta
from shared.usecases.outlook_to_dime.pipeline import read as pipeline_read
from tests.linkseed import add_mailbox

PAGE = 100  # shared.adapters.graph.DELTA_PAGE_SIZE
GUARD_SECONDS = 10.0  # only a guard against waiting forever on the old code; nothing is timed


def create_events(graph, person, count: int) -> list[str]:
    base = datetime.now(UTC).replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(days=1)
    for n in range(count):
        start = base + timedelta(days=n // 10, hours=n % 10)
        graph.create_event(
            person["id"],
            subject=f"Job {n}",
            start=start.replace(tzinfo=None).isoformat(),
            end=(start + timedelta(minutes=45)).replace(tzinfo=None).isoformat(),
        )
    return [event["id"] for event in graph.events(person["id"])]


def test_the_next_pages_reads_run_while_a_page_is_written_and_pages_are_written_in_order(
    graph, dime, services, monkeypatch
):
    """The first page's write holds until Graph is asked to read an event of a later page: that
    happens only if reads and writes overlap (before, a page's write had to end before the next
    page's reads began, and the write would wait for the guard in vain)."""
    person = add_mailbox(graph, services, mail="overlap@contoso.com")
    create_events(graph, person, 250)  # 3 delta pages: 100, 100, 50
    journal: list[str] = []
    first_page: set[str] = set()
    later_read = asyncio.Event()
    overlapped: list[bool] = []

    original_reads = services.graph.reads_batch  # every shared $batch read (pipeline/coalesce.py)

    async def reads(keys):
        if first_page and any(kind == EVENT_READ and event_id not in first_page for _, kind, event_id in keys):
            later_read.set()
        return await original_reads(keys)

    monkeypatch.setattr(services.graph, "reads_batch", reads)
    original_run = pipeline.run

    async def run(services_, changes, **kwargs):
        ids = {change.event_id for change in changes}
        journal.append(f"start {len(ids)}")
        if not first_page:
            first_page.update(ids)
            try:
                await asyncio.wait_for(later_read.wait(), GUARD_SECONDS)
                overlapped.append(True)
            except TimeoutError:
                overlapped.append(False)
        outcomes = await original_run(services_, changes, **kwargs)
        journal.append(f"end {len(ids)}")
        return outcomes

    monkeypatch.setattr(pipeline, "run", run)

    [stats] = asyncio.run(run_delta(services, reason="admin"))

    assert stats.outcome == "completed", stats.errors
    assert overlapped == [True]  # page 2's reads were asked while page 1 was being written
    assert journal == ["start 100", "end 100", "start 100", "end 100", "start 50", "end 50"]  # one at a time
    assert len(dime.appointments) == 250
    assert len(graph.batch_members) == 250  # every event read once: overlapping reads nothing twice


def test_a_round_paused_while_the_next_page_is_read_resumes_there_and_loses_nothing(graph, dime, services, monkeypatch):
    """The budget runs out while page 2 is read and page 1 written: the round pauses at page 1's
    nextLink (page 2 read, not written), and the next run reads page 2 again and completes."""
    person = add_mailbox(graph, services, mail="paused@contoso.com")
    create_events(graph, person, 250)
    expired = [False]
    monkeypatch.setattr(pipeline_read.Budget, "expired", lambda self: expired[0])
    original_run = pipeline.run

    async def run(services_, changes, **kwargs):
        outcomes = await original_run(services_, changes, **kwargs)
        expired[0] = True  # the budget ends during the first page's write
        return outcomes

    monkeypatch.setattr(pipeline, "run", run)
    [first] = asyncio.run(run_delta(services, reason="admin"))
    assert first.outcome == "paused"
    assert len(dime.appointments) == PAGE  # page 1 only: page 2 was read but not written
    reads_of_first_run = len(graph.batch_members)
    assert reads_of_first_run <= 2 * PAGE  # at most one page read ahead

    expired[0] = False
    monkeypatch.setattr(pipeline, "run", original_run)
    [second] = asyncio.run(run_delta(services))

    assert second.round == "full-listing-continued"
    assert second.outcome == "completed", second.errors
    assert len(dime.appointments) == 250
    assert len(graph.batch_members) - reads_of_first_run == 150  # pages 2 and 3, from page 1's nextLink
