"""A bulk retry of failed transactions over real Azurite and the fakes: few table round trips per
row, each row imported once when two workers run the same page, the walk handing its pages out
at once, and a worker that fails mid-page leaving its rows to the redelivered message."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

import function_app
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.transaction_query import TransactionFilter, public_id
from shared.core.transactions import Status, Transaction, new_transaction_id
from shared.names import BULK_QUEUE, NOTIFICATIONS_QUEUE
from shared.usecases.admin.bulk_transactions import PAGE, bulk_message, page_message, run_bulk
from tests.conftest import make_services, settings_env, track

DAY = datetime(2026, 11, 1, tzinfo=UTC)
FAILED = TransactionFilter(status=Status.FAILED)


def failed_notifications(graph, services, count: int) -> list[Transaction]:
    """`count` failed `created` notifications of one onboarded mailbox, their events in Graph."""
    person = graph.add_user(mail="bulk@contoso.com")
    track(services, person)
    rows = []
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    for i in range(count):
        start = first + timedelta(minutes=30 * i)
        event = graph.create_event(
            person["id"],
            subject=f"Job {i}",
            start=start.strftime("%Y-%m-%dT%H:%M:%S"),
            end=(start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
        )
        message = {"mailboxId": person["id"], "eventId": event["id"], "changeType": "created", "changeKey": "x"}
        rows.append(
            Transaction(
                id=new_transaction_id(DAY + timedelta(seconds=i)),
                mailbox_id=person["id"],
                direction="outlook-to-dime",
                operation="upsert",
                status=Status.FAILED,
                created_at=DAY.isoformat(),
                error_code="DIME_UNAVAILABLE",
                payload={"queue": NOTIFICATIONS_QUEUE, "message": message},
            )
        )
    transaction_store(services).add_many(rows)
    return rows


def whole_page(rows: list[Transaction]) -> dict:
    """The message of one page holding `rows` (the old walker read the same page from it)."""
    return page_message("retry", FAILED, None, public_id(rows[-1].mailbox_id, rows[-1].id))


def imports_per_appointment(dime) -> dict[str, int]:
    """In how many /import requests each appointment GUID was written."""
    counts: dict[str, int] = {}
    for request in dime.requests:
        if request.path != "/import":
            continue
        calls = request.json if isinstance(request.json, list) else [request.json]
        guids = set()
        for call in calls:
            values = dict(zip(call["ParameterNames"], call["ParameterValues"], strict=True))
            guids.add(str(values.get("AppointmentGuid") or values.get("appointmentGuid") or ""))
        for guid in guids - {""}:
            counts[guid] = counts.get(guid, 0) + 1
    return counts


def test_a_page_of_retries_costs_a_few_table_round_trips_not_three_per_row(graph, dime, services):
    """The page read once ($top), claimed and saved as table transactions: the transactions
    table is written in a handful of requests for 100 rows (the old code saved each row with an
    upsert, a delete of its index row and a history bump: over 300)."""
    from tests.storage_counter import StorageCounter

    rows = failed_notifications(graph, services, PAGE)
    counter = StorageCounter.install()
    counter.reset()

    asyncio.run(run_bulk(whole_page(rows), services))

    requests = {kind: n for kind, n in counter.table_requests().items() if kind != "POST Tables"}  # provisioning
    assert len(dime.appointments) == PAGE and list(transaction_store(services).failed()) == []
    single_row_writes = sum(n for kind, n in requests.items() if kind.split()[0] in ("PUT", "PATCH", "MERGE", "DELETE"))
    assert single_row_writes <= 2, requests  # every row write rides a table transaction (history: a merge or two)
    # the whole page, pipeline included (29 today: 9 table transactions, 16 link and tombstone reads, ...)
    assert sum(requests.values()) <= 50, requests


def test_a_page_run_by_two_workers_at_once_imports_each_row_once(graph, dime, azurite, services):
    """Two workers with their own event loops and locks (two processes) run the same page: the
    second finds the rows claimed by the first, which is still importing, and leaves them. Without
    claims both import every row (the links' races settle the board, but every appointment is
    written twice and every row counts two attempts)."""
    rows = failed_notifications(graph, services, 20)
    message = whole_page(rows)
    entered, release = threading.Event(), threading.Event()

    def hold(seconds: float) -> None:  # the first /import waits for the second worker to finish
        if seconds:
            entered.set()
            assert release.wait(60)

    dime.sleep = hold
    dime.delay_next(1.0)
    dime.reset_calls()
    first = make_services(settings_env(azurite, graph.base_url, dime.base_url))
    second = make_services(settings_env(azurite, graph.base_url, dime.base_url))
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(first=asyncio.run(run_bulk(message, first))))
    worker.start()
    try:
        assert entered.wait(60)  # the first worker is inside its /import
        outcome["second"] = asyncio.run(run_bulk(message, second))
    finally:
        release.set()
        worker.join(60)

    assert sorted(imports_per_appointment(dime).values()) == [1] * 20  # each row once (the old code: twice)
    assert outcome == {"first": {"handled": 20}, "second": {"handled": 0}}
    assert len(dime.appointments) == 20 and list(transaction_store(services).failed()) == []
    retried = [t for t in transaction_store(services).of_mailbox(rows[0].mailbox_id) if t.id in {r.id for r in rows}]
    assert {t.attempts for t in retried} == {2}  # the first attempt and this retry, counted once


def test_the_walk_hands_out_its_pages_at_once_and_each_row_is_retried_once(graph, dime, services):
    """The message the API queues reads keys only and hands out a page message per 100 rows (the
    pages then run side by side); a row that fails again is not visited twice."""
    from shared.core.ids import appointment_guid
    from tests.conftest import TENANT_ID
    from tests.host import run_queue

    rows = failed_notifications(graph, services, 2 * PAGE + 10)
    refused = rows[150]
    guid = appointment_guid(TENANT_ID, refused.mailbox_id, refused.payload["message"]["eventId"])
    dime.refuse_call(guid, "Invalid parameter", "Location is not a known site.")
    asyncio.run(run_bulk(bulk_message("retry", FAILED), services))
    queue = services.queues.client(BULK_QUEUE)
    handed = [message.content for message in queue.peek_messages(max_messages=32)]
    bounds = [(m["after"], m["through"]) for m in map(json.loads, handed)]
    ids = [public_id(r.mailbox_id, r.id) for r in rows]
    assert sorted(bounds, key=lambda b: b[1]) == [(None, ids[99]), (ids[99], ids[199]), (ids[199], ids[-1])]
    assert len(dime.appointments) == 0  # the walker itself retries nothing

    run = run_queue(services, BULK_QUEUE, function_app.bulk_transactions)

    assert run.failed == 0 and len(dime.appointments) == len(rows) - 1
    assert [(t.id, t.attempts, t.error_code) for t in transaction_store(services).failed()] == [
        (refused.id, 2, "DIME_REJECTED")
    ]


def test_a_worker_that_fails_mid_page_releases_its_claims_for_the_redelivery(graph, dime, services, monkeypatch):
    """Storage fails while the outcomes are saved: the message fails (the host redelivers it),
    the rows are still open failures, and the redelivery takes them at once (claims released)."""
    from shared.adapters.storage import aio_stores

    rows = failed_notifications(graph, services, 10)
    real = aio_stores.AsyncBulkTransactions.save_many

    async def broken(self, transactions):
        raise ConnectionError("storage went away")

    monkeypatch.setattr(aio_stores.AsyncBulkTransactions, "save_many", broken)
    with pytest.raises(ConnectionError):
        asyncio.run(run_bulk(whole_page(rows), services))
    assert len(list(transaction_store(services).failed())) == 10  # nothing hidden
    monkeypatch.setattr(aio_stores.AsyncBulkTransactions, "save_many", real)

    assert asyncio.run(run_bulk(whole_page(rows), services)) == {"handled": 10}
    assert list(transaction_store(services).failed()) == [] and len(dime.appointments) == 10
