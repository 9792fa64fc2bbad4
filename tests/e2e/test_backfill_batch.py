"""Onboarding in pages: events new to us go to Dime.Scheduler one import per page, their links and
success transactions one table batch each; a failed batch falls back to one event at a time, so a
bad event becomes its own failed transaction and the others still reach the board."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from shared.core.transactions import Status
from shared.usecases.resync import resync
from tests.linkseed import add_mailbox
from tests.storage_counter import StorageCounter


def create_events(graph, person, count: int) -> None:
    base = datetime.now(UTC).replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(days=1)
    for n in range(count):
        start = base + timedelta(days=n // 10, hours=n % 10)
        graph.create_event(
            person["id"],
            subject=f"Job {n}",
            start=start.replace(tzinfo=None).isoformat(),
            end=(start + timedelta(minutes=45)).replace(tzinfo=None).isoformat(),
            show_as="free" if n % 25 == 0 else "busy",  # some the default consent refuses
        )


def test_onboarding_writes_a_page_of_new_events_in_one_import_and_one_table_batch(graph, dime, services):
    person = add_mailbox(graph, services, mail="onboard@contoso.com")
    create_events(graph, person, 250)
    dime.reset_calls()
    counter = StorageCounter.install()
    counter.reset()

    asyncio.run(resync({"mailboxId": person["id"], "reason": "onboarded"}, services))

    table_operations = counter.by_service().get("table", 0)
    consented = 250 - 10  # every 25th is "free"
    # Per page, not per event (~5 per event before): the origin marks too, which sit in a few
    # partitions so that a page's marks are one table transaction per partition.
    assert table_operations < 250 / 5, table_operations
    assert len(dime.appointments) == consented
    imports = [r for r in dime.requests if r.path == "/import"]
    assert len(imports) == 3  # pages of 100: one import each
    assert sum(len(r.json) for r in imports) == consented
    links = list(services.store.links_of(person["id"]))
    assert len(links) == consented and all(link.appointment_id for link in links)
    transactions = list(services.store.transactions_of(person["id"]))
    assert len(transactions) == consented and {t.status for t in transactions} == {Status.SUCCEEDED}

    dime.reset_calls()  # a second full round finds everything linked: nothing written
    asyncio.run(resync({"mailboxId": person["id"], "reason": "admin"}, services))
    assert dime.writes == 0


def test_a_call_dime_refuses_costs_the_page_a_few_imports_and_fails_alone(graph, dime, services):
    """Dime.Scheduler applies an import all or nothing: the page's import is split in halves (then
    call by call under five) until the refused call is alone; the 22 others reach the board, the
    refused one is a failed transaction without a link. Formerly 1 + 23 imports (one by one)."""
    from shared.core.ids import appointment_guid
    from tests.conftest import TENANT_ID

    person = add_mailbox(graph, services, mail="onboard@contoso.com")
    create_events(graph, person, 24)  # the first is "free": 23 to write
    busy = [e for e in graph.events(person["id"]) if e["showAs"] == "busy"]
    refused = appointment_guid(TENANT_ID, person["id"], busy[7]["id"])
    dime.refuse_call(refused, "Invalid parameter", "Location is not a known site.")
    dime.reset_calls()

    asyncio.run(resync({"mailboxId": person["id"], "reason": "onboarded"}, services))

    assert len(dime.appointments) == 22 and refused not in dime.appointments
    imports = [r for r in dime.requests if r.path == "/import"]
    assert 1 + 2 <= len(imports) <= 12  # 23 -> halves -> ... -> at most 4 one by one; never 1 + 23
    failed = [t for t in services.store.transactions_of(person["id"]) if t.status is Status.FAILED]
    assert [t.appointment_guid for t in failed] == [refused]
    assert failed[0].event_id not in {link.event_id for link in services.store.links_of(person["id"])}
    assert len(list(services.store.links_of(person["id"]))) == 22


def test_a_backfill_reads_its_next_page_while_the_last_one_is_written(graph, dime, services, monkeypatch):
    """Overlap, one page ahead: when the first page's /import starts, the second delta page has
    been asked for (formerly only after the page was written). The import waits for that request
    (up to 5 s, no timing asserted), so the old order shows as a page never read ahead."""
    import time

    person = add_mailbox(graph, services, mail="onboard@contoso.com")
    create_events(graph, person, 150)  # two delta pages of 100
    graph.reset_requests()
    real_import = services.dime.run_import  # the same calls, on a thread: the test may block
    read_ahead: list[bool] = []

    def delta_pages() -> int:
        return sum(1 for r in graph.requests if "delta" in r.path.lower())

    async def watched_import(calls):
        if not read_ahead:
            deadline = time.monotonic() + 5
            while delta_pages() < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            read_ahead.append(delta_pages() >= 2)
        return await asyncio.to_thread(real_import, calls)

    async def onboard() -> None:
        monkeypatch.setattr(services.adime, "run_import", watched_import)
        await resync({"mailboxId": person["id"], "reason": "onboarded"}, services)

    asyncio.run(onboard())

    assert read_ahead == [True]
    assert len(dime.appointments) == 150 - 6  # every 25th is "free"
    assert delta_pages() == 2  # one page ahead, never more
