"""The Dime.Scheduler → Outlook reconcile timer fans out (usecases/dime_to_outlook/reconcile_chunks.py):
through the real functions, Azurite queues and tables, FakeGraph and the fake Dime.Scheduler."""

from __future__ import annotations

import asyncio
import json
import math

from azure.functions.timer import TimerRequest

import function_app
from shared.adapters.storage.mailbox_claims import claims_partition
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.fanout import CHUNK_SIZE
from shared.core.runs import DIME_RECONCILE, DIME_SCHEDULER_SCOPE
from shared.core.transactions import ErrorCode
from shared.names import MAILBOX_CHUNKS_QUEUE, POISON_SUFFIX, SYNCSTATE_TABLE
from shared.usecases.fanout import run_chunk
from shared.usecases.poison import REQUEUED
from tests.conftest import track
from tests.e2e.test_dime_to_outlook import near, ours
from tests.host import call_function, run_queue


def people_on_the_board(graph, dime, services, n: int) -> list[dict]:
    """n onboarded people, each a Dime.Scheduler resource R-<i> with Exchange integration."""
    people = [graph.add_user(mail=f"p{i}@contoso.com") for i in range(n)]
    for i, person in enumerate(people):
        track(services, person)
        dime.board.add_resource(f"R-{i}", person["mail"])
    return people


def queued(services) -> list[dict]:
    """The chunk messages waiting (peeked: left in the queue)."""
    client = services.queues.client(MAILBOX_CHUNKS_QUEUE)
    return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]


def run_record(services) -> dict | None:
    return SyncStateStore(services.store).run(DIME_SCHEDULER_SCOPE, DIME_RECONCILE)


def calendar_reads(graph, mailbox: str) -> int:
    return sum(1 for r in graph.requests if r.method == "GET" and "/calendarView" in r.path and mailbox in r.path)


def claim_rows(services) -> list[dict]:
    table = services.store.table(SYNCSTATE_TABLE)
    return list(table.query_entities("PartitionKey eq @pk", parameters={"pk": claims_partition(DIME_RECONCILE)}))


def test_the_timer_hands_people_out_in_chunks_and_the_chunks_place_their_appointments(graph, dime, services):
    people = people_on_the_board(graph, dime, services, CHUNK_SIZE + 2)
    first = dime.board.plan("First", near(1, 8), near(1, 9), ["R-0"])
    last = dime.board.plan("Last", near(2, 8), near(2, 9), [f"R-{CHUNK_SIZE + 1}"])
    graph.reset_requests()
    dime.reset_calls()

    call_function(function_app.dime_reconcile_timer, TimerRequest(past_due=False))

    messages = queued(services)
    assert len(messages) == math.ceil(len(people) / CHUNK_SIZE) == 2
    assert {m["kind"] for m in messages} == {DIME_RECONCILE} and len({m["run"] for m in messages}) == 1
    assert sorted(i for m in messages for i in m["mailboxIds"]) == sorted(p["id"].lower() for p in people)
    # The timer reads the directory only: no calendar, no appointment listing, nothing placed.
    assert graph.requests == [] and all(r.path.rstrip("/").endswith("/resource") for r in dime.requests)
    opened = run_record(services)
    assert opened["Outcome"] == "running" and opened["Round"].endswith(": 0 of 2 chunks done (27 mailboxes)")

    run = run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)

    assert (run.succeeded, run.failed) == (2, 0)
    assert [e["subject"] for e in ours(graph, people[0]["id"])] == ["First"]
    assert [e["subject"] for e in ours(graph, people[-1]["id"])] == ["Last"]
    total = run_record(services)
    assert total["Outcome"] == "completed" and total["Round"].endswith(": 2 of 2 chunks done (27 mailboxes)")
    assert (total["Changes"], total["Writes"], total["Deletes"], total["Errors"]) == (2, 2, 0, 0)
    assert total["GraphRequests"] == len(graph.requests) and total["DimeRequests"] == len(dime.requests)
    assert {first, last} <= {
        t.appointment_guid for p in (people[0], people[-1]) for t in services.store.transactions_of(p["id"])
    }


def test_a_chunk_delivered_twice_at_once_runs_each_person_once(graph, dime, services):
    people = people_on_the_board(graph, dime, services, 3)
    for i in range(3):
        dime.board.plan(f"Visit {i}", near(1, 8 + i), near(1, 9 + i), [f"R-{i}"])
    call_function(function_app.dime_reconcile_timer, TimerRequest(past_due=False))
    [message] = queued(services)
    services.queues.send(MAILBOX_CHUNKS_QUEUE, message)  # the same chunk again, delivered beside the first
    graph.reset_requests()
    dime.reset_calls()

    run = run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)

    assert (run.succeeded, run.failed) == (2, 0)
    assert [calendar_reads(graph, p["id"]) for p in people] == [1, 1, 1]  # one orphan sweep each
    assert [len(ours(graph, p["id"])) for p in people] == [1, 1, 1]
    assert sum(1 for r in dime.requests if r.path.rstrip("/").endswith("/appointment")) == 1
    assert run_record(services)["Writes"] == 3  # the duplicate added nothing

    graph.reset_requests()
    again = asyncio.run(run_chunk(message, services))  # delivered again after it finished
    assert sorted(again.done_already) == sorted(p["id"].lower() for p in people) and again.ran == []
    assert graph.requests == []


def test_a_chunk_naming_someone_the_directory_does_not_cover_touches_nothing_of_theirs(graph, dime, services):
    from tests.e2e.test_dime_to_outlook import tagged_event

    [person] = people_on_the_board(graph, dime, services, 1)
    stranger = graph.add_user(mail="stranger@contoso.com")  # in Graph's directory; no resource, no row of ours
    track(services, stranger)  # even onboarded: the Dime.Scheduler directory does not name them
    bait = tagged_event(graph, stranger["id"], "0b7c1a4e-0000-4000-8000-00000000dead", "R-X", "Not ours", near(1, 8))
    call_function(function_app.dime_reconcile_timer, TimerRequest(past_due=False))
    [message] = queued(services)
    assert message["mailboxIds"] == [person["id"].lower()]  # the timer never hands the stranger out
    forged = {**message, "mailboxIds": [stranger["id"], person["id"]]}
    graph.reset_requests()

    report = asyncio.run(run_chunk(forged, services))

    assert report.not_onboarded == [stranger["id"].lower()] and report.ran == [person["id"].lower()]
    assert all(stranger["id"] not in r.path for r in graph.requests)
    assert graph.get_event(stranger["id"], bait["id"]) is not None
    assert [row["RowKey"] for row in claim_rows(services)] == [person["id"].lower()]


def test_a_chunk_that_fails_every_delivery_becomes_a_failed_transaction_that_a_retry_runs(graph, dime, services):
    from shared.usecases.retry import retry_transaction

    [person] = people_on_the_board(graph, dime, services, 1)
    dime.board.plan("Visit", near(1, 8), near(1, 9), ["R-0"])
    call_function(function_app.dime_reconcile_timer, TimerRequest(past_due=False))
    dime.fail_next(100, status=503, path_contains="/appointment")  # the listing fails on every delivery

    run = run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)
    poisoned = run_queue(services, MAILBOX_CHUNKS_QUEUE + POISON_SUFFIX, function_app.poisoned_mailbox_chunk)

    assert run.poisoned == 1 and poisoned.succeeded == 1 and ours(graph, person["id"]) == []
    [failed] = transaction_store(services).failed()
    assert failed.operation == "dime-reconcile-chunk" and failed.error_code == ErrorCode.DIME_UNAVAILABLE.value
    assert failed.payload["message"]["mailboxIds"] == [person["id"].lower()] and failed.direction == "dime-to-outlook"
    assert run_record(services)["Outcome"] == "failed"  # the record says so meanwhile
    assert [row["Owner"] for row in claim_rows(services)] == [""]  # given back, not held until it expires

    dime.clear_faults()  # Dime.Scheduler is back; an administrator retries the transaction
    outcome = asyncio.run(retry_transaction(services, failed))
    again = run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)

    assert outcome.retried and outcome.transaction.reason == REQUEUED + MAILBOX_CHUNKS_QUEUE
    assert again.succeeded == 1 and [e["subject"] for e in ours(graph, person["id"])] == ["Visit"]
