"""The delta, reconcile and renewal timers fan out (usecases/fanout.py): through the real functions,
Azurite queues and tables, and FakeGraph / the fake Dime.Scheduler."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.adapters.storage import mailbox_claims
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.fanout import CHUNK_SIZE
from shared.core.outlook_to_dime.appointments import UPSERT_PROCEDURE
from shared.core.resources import resource_from_user
from shared.core.runs import DELTA, DIME_SCHEDULER_SCOPE, RECONCILE
from shared.core.transactions import ErrorCode
from shared.names import MAILBOX_CHUNKS_QUEUE, POISON_SUFFIX, SYNCSTATE_TABLE
from shared.usecases.fanout import run_chunk
from tests.host import call_function, fire_timer, run_queue


def onboard(graph, services, n: int, prefix: str = "p") -> list[dict]:
    people = [graph.add_user(mail=f"{prefix}{i}@contoso.com") for i in range(n)]
    for person in people:
        services.store.add_resource(resource_from_user(person, services.settings.default_consent))
    return people


def queued(services) -> list[dict]:
    """The chunk messages waiting (peeked: left in the queue)."""
    client = services.queues.client(MAILBOX_CHUNKS_QUEUE)
    return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]


def delta_requests(graph, mailbox_id: str) -> int:
    return sum(1 for r in graph.requests if "/delta" in r.path and mailbox_id in r.path)


def upserted_subjects(dime) -> list[str]:
    return sorted(params.get("Subject") for procedure, params in dime.calls if procedure == UPSERT_PROCEDURE)


@pytest.mark.parametrize("timer", ["delta_timer", "reconcile_timer"])
def test_the_timer_sends_one_message_per_25_mailboxes_and_asks_graph_nothing(graph, services, timer):
    people = onboard(graph, services, 2 * CHUNK_SIZE + 3)
    graph.reset_requests()

    call_function(getattr(function_app, timer), TimerRequest(past_due=False))

    messages = queued(services)
    assert len(messages) == math.ceil(len(people) / CHUNK_SIZE) == 3
    assert sorted(i for m in messages for i in m["mailboxIds"]) == sorted(p["id"].lower() for p in people)
    assert max(len(m["mailboxIds"]) for m in messages) == CHUNK_SIZE
    assert len({m["run"] for m in messages}) == 1 and {m["kind"] for m in messages} == {timer.split("_")[0]}
    assert graph.requests == []
    record = SyncStateStore(services.store).run(DIME_SCHEDULER_SCOPE, timer.split("_")[0])
    assert record["Changes"] == len(people) and record["Writes"] == 3 and messages[0]["run"] in record["Round"]


def test_the_delta_timer_hands_out_enabled_mailboxes_only(graph, services):
    from dataclasses import replace

    people = onboard(graph, services, 3)
    off = services.store.get_resource(people[0]["id"])
    services.store.put_resource(replace(off, consent=replace(off.consent, enabled=False)))

    call_function(function_app.delta_timer, TimerRequest(past_due=False))

    assert sorted(i for m in queued(services) for i in m["mailboxIds"]) == sorted(p["id"] for p in people[1:])


def test_the_chunks_bring_every_mailboxs_changes_to_the_board(graph, dime, services):
    people = onboard(graph, services, CHUNK_SIZE + 2)
    for n, person in enumerate((people[0], people[-1])):
        graph.create_event(person["id"], subject=f"Event {n}")

    run = fire_timer(function_app.delta_timer, services)

    assert run.succeeded == 2 and run.failed == 0
    assert upserted_subjects(dime) == ["Event 0", "Event 1"]
    store = SyncStateStore(services.store)
    assert all(store.run(p["id"], DELTA)["Outcome"] == "completed" for p in people)


def test_a_chunk_delivered_twice_at_once_runs_each_mailbox_once(graph, dime, services):
    people = onboard(graph, services, 4)
    for person in people:
        graph.create_event(person["id"], subject=f"Event of {person['id'][:8]}")
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    [message] = queued(services)
    services.queues.send(MAILBOX_CHUNKS_QUEUE, message)  # the same chunk again, delivered beside the first
    graph.reset_requests()

    run = run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)

    assert run.succeeded == 2 and run.failed == 0
    assert [delta_requests(graph, p["id"]) for p in people] == [1, 1, 1, 1]
    assert len(upserted_subjects(dime)) == 4


def test_a_chunk_delivered_again_after_it_finished_costs_no_graph_request(graph, services):
    people = onboard(graph, services, 3)
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    [message] = queued(services)
    first = asyncio.run(run_chunk(message, services))
    graph.reset_requests()

    again = asyncio.run(run_chunk(message, services))

    assert sorted(first.ran) == sorted(p["id"] for p in people) and again.ran == []
    assert sorted(again.done_already) == sorted(first.ran)
    assert graph.requests == []


def test_a_chunk_of_the_next_run_runs_the_mailboxes_again(graph, services):
    people = onboard(graph, services, 2)
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    asyncio.run(run_chunk(queued(services)[0], services))
    services.queues.client(MAILBOX_CHUNKS_QUEUE).clear_messages()
    services.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)  # the next run starts later
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    graph.reset_requests()

    report = asyncio.run(run_chunk(queued(services)[0], services))

    assert sorted(report.ran) == sorted(p["id"] for p in people)
    assert [delta_requests(graph, p["id"]) for p in people] == [1, 1]


def test_a_chunk_naming_a_mailbox_not_onboarded_does_nothing_to_it(graph, dime, services):
    [tracked] = onboard(graph, services, 1)
    stranger = graph.add_user(mail="stranger@contoso.com")  # in the directory of Graph, never onboarded
    graph.create_event(stranger["id"], subject="Private to the stranger")
    graph.create_event(tracked["id"], subject="Tracked")
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    [message] = queued(services)
    forged = {**message, "mailboxIds": [stranger["id"], tracked["id"]]}
    graph.reset_requests()

    report = asyncio.run(run_chunk(forged, services))

    assert report.not_onboarded == [stranger["id"].lower()] and report.ran == [tracked["id"]]
    assert delta_requests(graph, stranger["id"]) == 0 and all(stranger["id"] not in r.path for r in graph.requests)
    assert upserted_subjects(dime) == ["Tracked"]
    rows = list(
        services.store.table(SYNCSTATE_TABLE).query_entities("PartitionKey eq @pk", parameters={"pk": stranger["id"]})
    )
    assert rows == [] and services.store.get_resource(stranger["id"]) is None


@pytest.mark.parametrize(
    "message",
    [
        "not an object",
        {"kind": "delete-everything", "run": "delta-20261206t120000z-0123abcd", "mailboxIds": ["a"]},
        {"kind": "delta", "run": "x", "mailboxIds": ["a"]},
        {"kind": "delta", "run": "delta-20261206t120000z-0123abcd", "mailboxIds": ["a"] * 101},
        {"kind": "delta", "run": "delta-20261206t120000z-0123abcd", "mailboxIds": ["a/../b"]},
    ],
)
def test_a_message_we_did_not_send_touches_nothing(graph, services, message):
    onboard(graph, services, 1)
    before = list(services.store.table(SYNCSTATE_TABLE).list_entities())

    report = asyncio.run(run_chunk(message, services))

    assert report.rejected and report.ran == []
    assert list(services.store.table(SYNCSTATE_TABLE).list_entities()) == before and graph.requests == []


def test_a_chunk_that_fails_every_delivery_becomes_a_failed_transaction(graph, services, monkeypatch):
    onboard(graph, services, 2)
    call_function(function_app.delta_timer, TimerRequest(past_due=False))

    async def storage_down(tables, mailbox_ids):
        raise ConnectionError("table storage unreachable")

    monkeypatch.setattr(mailbox_claims, "resources_named", storage_down)
    run = run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)
    poisoned = run_queue(services, MAILBOX_CHUNKS_QUEUE + POISON_SUFFIX, function_app.poisoned_mailbox_chunk)

    assert run.poisoned == 1 and poisoned.succeeded == 1
    [failed] = transaction_store(services).failed()
    assert failed.operation == "delta-chunk" and failed.error_code == ErrorCode.POISON_MESSAGE.value
    assert "table storage unreachable" in failed.message and failed.payload["queue"] == MAILBOX_CHUNKS_QUEUE
    assert failed.payload["message"]["mailboxIds"] and failed.next_attempt_at  # the retry timer sends it again


def test_the_reconcile_chunks_check_disabled_mailboxes_too(graph, dime, services):
    from dataclasses import replace

    [person] = onboard(graph, services, 1)
    graph.create_event(person["id"], subject="Kept until consent is withdrawn")
    fire_timer(function_app.delta_timer, services)
    assert upserted_subjects(dime) == ["Kept until consent is withdrawn"]
    resource = services.store.get_resource(person["id"])
    services.store.put_resource(replace(resource, consent=replace(resource.consent, enabled=False)))

    fire_timer(function_app.reconcile_timer, services)

    assert SyncStateStore(services.store).run(person["id"], RECONCILE)["Deletes"] == 1
    assert services.store.get_link(person["id"], graph.events(person["id"])[0]["id"]) is None


def test_a_reconcile_through_the_resync_queue_never_runs_beside_a_chunks_pass(graph, dime, services):
    from shared.adapters.storage.mailbox_claims import take_claim
    from shared.usecases.outlook_to_dime.reconcile import RECONCILE_CONTINUE
    from shared.usecases.resync import resync

    [person] = onboard(graph, services, 1)
    graph.create_event(person["id"], subject="Linked")
    fire_timer(function_app.delta_timer, services)
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)

    async def a_chunk_holds_it():
        return await take_claim(services.astore.tables, RECONCILE, person["id"], "reconcile-x", "a-chunk", now, later)

    held, _ = asyncio.run(a_chunk_holds_it())
    graph.reset_requests()
    message = {"mailboxId": person["id"], "reason": RECONCILE_CONTINUE}

    assert asyncio.run(resync(message, services)) is None
    assert graph.requests == []

    services.clock = lambda: datetime.now(UTC) + timedelta(minutes=6)  # the chunk's worker died: its claim expired
    stats = asyncio.run(resync(message, services))
    assert held.value == "take" and stats.outcome == "completed" and graph.requests


def test_claims_taken_together_fall_back_row_by_row_when_another_worker_wrote_one(graph, services, monkeypatch):
    """Between the read of a chunk's claims and its transaction another worker took one: the
    transaction fails as a whole, each claim is tried on its own, and only that one is HELD."""
    people = onboard(graph, services, 3)
    ids = sorted(p["id"] for p in people)
    now = datetime.now(UTC)
    run = "delta-20261206t120000z-0123abcd"
    later = now + timedelta(minutes=5)

    async def nothing_yet(tables, name, pk, wanted, select):
        return {}  # read before the other worker wrote

    async def scenario() -> tuple[dict, dict]:
        tables = services.astore.tables
        await mailbox_claims.take_claim(tables, DELTA, ids[1], run, "the-other-worker", now, later)
        read = mailbox_claims._in_range
        monkeypatch.setattr(mailbox_claims, "_in_range", nothing_yet)
        claims = await mailbox_claims.take_claims(tables, DELTA, ids, run, "me", now, later)
        monkeypatch.setattr(mailbox_claims, "_in_range", read)
        await mailbox_claims.finish_claims(tables, DELTA, [(m, run, etag) for m, (_, etag) in claims.items()])
        return claims, await mailbox_claims.take_claims(tables, DELTA, ids, run, "me-again", now, later)

    claims, again = asyncio.run(scenario())

    assert {m: verdict.value for m, (verdict, _) in claims.items()} == {ids[0]: "take", ids[1]: "held", ids[2]: "take"}
    assert {m: verdict.value for m, (verdict, _) in again.items()} == {ids[0]: "done", ids[1]: "held", ids[2]: "done"}


def test_an_idle_mailboxs_delta_costs_three_table_requests_and_a_chunk_four_more(graph, services):
    """Issue 20: what limits 2,000 idle mailboxes is CPU per storage request. An idle mailbox (delta
    answers no change) reads its delta and lease rows together, takes the lease, and writes its
    new position, the lease's release and its run record in one transaction: 3 requests (7 before:
    lease read + write, state read, state write, lease read + write, run record). A chunk adds its
    directory read and its claims (read, take, finish): 4, whatever its size."""
    from tests.storage_counter import StorageCounter

    people = onboard(graph, services, 25)
    counter = StorageCounter.install()
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    [message] = queued(services)
    asyncio.run(run_chunk(message, services))  # each mailbox's first round: idle from now on
    services.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)  # the next timer run
    services.queues.client(MAILBOX_CHUNKS_QUEUE).clear_messages()
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    [message] = queued(services)
    graph.reset_requests()

    counter.reset()
    report = asyncio.run(run_chunk(message, services))

    assert sorted(report.ran) == sorted(p["id"] for p in people)
    assert set(report.outcomes.values()) == {"completed"}
    assert counter.by_service().get("table", 0) == 4 + 3 * len(people)
    assert counter.by_service().get("queue", 0) == 0
    assert [delta_requests(graph, p["id"]) for p in people] == [1] * len(people)
    store = SyncStateStore(services.store)
    assert all(store.run(p["id"], DELTA)["Round"] == "incremental" for p in people)
