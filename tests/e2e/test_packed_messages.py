"""A packed message (one POST's notifications) read and written together, through the real queue
function: the same board and links as one message per change, in a handful of requests.

Each test posts to the real webhook, lets the queue function (tests/host.py) drain the queue
against Azurite, and counts what FakeGraph and FakeDime were asked.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import azure.functions as func
import pytest

import function_app
from shared.adapters.storage.subscription_rows import delete_resource_row
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from shared.core.ids import appointment_guid
from shared.core.outlook_to_dime.appointments import UPSERT_PROCEDURE
from shared.core.transactions import Status
from shared.names import NOTIFICATIONS_QUEUE
from shared.usecases.outlook_to_dime.pipeline import read as pipeline_read
from shared.usecases.outlook_to_dime.pipeline.read import state_store
from tests.conftest import TENANT_ID, notification_item, track
from tests.host import run_queue


def post(items: list[dict]) -> None:
    body = json.dumps({"value": items}).encode()
    answer = function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body))
    assert answer.status_code == 202


def deliver(services) -> Any:
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    assert run.poisoned == 0, run.errors
    return run


def item(person: dict, event: dict, change_type: str = "updated") -> dict:
    return notification_item(person["id"], event["id"], change_type, event.get("changeKey"))


@pytest.fixture
def no_waits(monkeypatch) -> list[float]:
    """Record the Retry-After waits of throttled $batch members instead of sleeping them."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(pipeline_read, "sleep", record)
    return waits


def slot(start: str) -> dict[str, str]:
    """An hour from `start` (an ISO local time on the hour)."""
    return {"start": start, "end": f"{start[:11]}{int(start[11:13]) + 1:02d}:00:00"}


def people(graph, services, count: int) -> list[dict]:
    users = [graph.add_user(mail=f"tech{n}@contoso.com") for n in range(count)]
    for user in users:
        track(services, user)
    return users


def test_n_new_events_cost_one_import_and_two_graph_requests_per_twenty(graph, dime, services):
    (person,) = people(graph, services, 1)
    events = [
        graph.create_event(person["id"], subject=f"Job {n}", **slot(f"2026-11-{10 + n % 12}T08:00:00"))
        for n in range(25)
    ]
    graph.reset_requests()

    post([item(person, event, "created") for event in events] * 2)  # duplicates fold
    run = deliver(services)

    assert run.succeeded == 1  # one message, nothing requeued
    assert len(dime.requests) == 1  # one /import
    assert len(graph.requests) <= math.ceil(25 / 20) * 2  # a $batch of reads and one of proofs per 20
    assert len([m for m in graph.batch_members if "calendarView" in m.path]) <= 25
    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in events}
    links = {link.event_id: link for link in services.store.links_of(person["id"])}
    assert {e["id"]: e["changeKey"] for e in events} == {k: v.change_key for k, v in links.items()}
    succeeded = [t for t in services.store.transactions_of(person["id"]) if t.status is Status.SUCCEEDED]
    assert sorted(t.event_id for t in succeeded) == sorted(e["id"] for e in events)


def test_a_proof_listing_with_more_pages_is_continued_once_for_the_events_it_did_not_list(graph, dime, services):
    """Graph pages a calendarView (at most $top=100 here): an event on a later page is proven by
    following the member's nextLink, once for every event sharing that listing."""
    (person,) = people(graph, services, 1)
    crowd = [graph.create_event(person["id"], subject=f"Slot {n}", **slot("2026-11-25T08:00:00")) for n in range(105)]
    graph.reset_requests()

    post([item(person, e, "created") for e in crowd[55:]])  # 50: one message; 5 of them on page 2
    run = deliver(services)

    assert run.succeeded == 1 and len(dime.requests) == 1
    continued = [r for r in graph.requests if "calendarView" in r.path]
    assert len(continued) == 1 and "skip" in continued[0].raw_target.lower()
    assert len(graph.requests) == 3 + 1 + 1  # reads (20, 20, 10), one proof member, its page 2
    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in crowd[55:]}


def test_unchanged_events_with_awkward_ids_cost_no_graph_request(graph, dime, services):
    """The links of a message are found by one query, whatever the ids hold (/, +, =)."""
    (person,) = people(graph, services, 1)
    events = [graph.create_event(person["id"], subject=f"Job {n}", id=f"AAMkAD/x+{n}==") for n in range(3)]
    post([item(person, e, "created") for e in events])
    deliver(services)
    graph.reset_requests()
    dime.reset_calls()

    post([item(person, e) for e in events])
    deliver(services)

    assert graph.requests == [] and dime.requests == []
    assert {link.event_id for link in services.store.links_of(person["id"])} == {e["id"] for e in events}


def scenario_setup(graph, services, person) -> dict[str, dict]:
    """Events already on the board (synchronised one message each) before the message under test."""
    events = {
        "edited": graph.create_event(person["id"], subject="Edited", **slot("2026-11-20T08:00:00")),
        "same": graph.create_event(person["id"], subject="Same", **slot("2026-11-20T10:00:00")),
        "deleted": graph.create_event(person["id"], subject="Deleted", **slot("2026-11-21T08:00:00")),
        "vanished": graph.create_event(person["id"], subject="Vanished", **slot("2026-11-21T10:00:00")),
    }
    for event in events.values():
        post([item(person, event, "created")])
    deliver(services)
    return events


def scenario_changes(graph, services, person, events: dict[str, dict]) -> list[dict]:
    """What happens next in Outlook, and the notifications Graph sends for it."""
    mailbox = person["id"]
    events["edited"] = graph.update_event(mailbox, events["edited"]["id"], subject="Edited (moved)")
    graph.delete_event(mailbox, events["deleted"]["id"])
    graph.delete_event(mailbox, events["vanished"]["id"])
    for n in range(3):
        events[f"new{n}"] = graph.create_event(mailbox, subject=f"New {n}", **slot(f"2026-11-2{n}T13:00:00"))
    events["free"] = graph.create_event(mailbox, subject="Free", show_as="free", **slot("2026-11-22T15:00:00"))
    events["other"] = graph.create_event(mailbox, subject="Other calendar", calendar="Second")
    tag = "0b0e8c5e-0000-4000-8000-000000000009|R-X"
    events["tagged"] = graph.create_event(mailbox, subject="Planner's", extended_properties={TAG_PROPERTY_ID: tag})
    events["series"] = graph.create_series(mailbox, subject="Stand-up", **slot("2026-11-24T09:00:00"), count=3)
    events["tombstoned"] = graph.create_event(mailbox, subject="Came back", **slot("2026-11-23T15:00:00"))
    state_store(services).add_tombstone(mailbox, events["tombstoned"]["id"], services.clock())
    never = graph.create_event(mailbox, subject="Never synced")
    graph.delete_event(mailbox, never["id"])
    return [
        item(person, events["edited"]),
        item(person, events["same"]),
        item(person, events["deleted"], "deleted"),
        notification_item(mailbox, events["vanished"]["id"], "updated", None),  # Graph answers 404 to its read
        *(item(person, events[f"new{n}"], "created") for n in range(3)),
        item(person, events["free"], "created"),
        item(person, events["other"], "created"),
        item(person, events["tagged"], "created"),
        item(person, events["series"], "created"),
        item(person, events["tombstoned"]),
        item(person, never, "deleted"),
    ]


def board_of(dime, person) -> dict[tuple[str, str], dict]:
    """The person's appointments, keyed by subject and start, without the keys tied to ids."""
    ids = ("AppointmentGuid", "AppointmentId", "ResourceEmail", "ExchangeId", "ICalUId")
    return {
        (p["Subject"], p["Start"]): {k: v for k, v in p.items() if k not in ids}
        for p in dime.appointments.values()
        if p["ResourceEmail"] == person["mail"]
    }


def links_of(graph, dime, services, person) -> dict[tuple[str, str], tuple]:
    """The person's links, keyed like board_of: whether each holds the event's current changeKey,
    its origin, whether its appointment is on the board, and whether it is an instance."""
    out = {}
    for link in services.store.links_of(person["id"]):
        event = graph.get_event(person["id"], link.event_id)
        key = (event["subject"], event["start"]["dateTime"]) if event else ("(gone)", link.event_id)
        fresh = link.change_key == (event or {}).get("changeKey")
        out[key] = (fresh, link.origin, link.appointment_guid in dime.appointments, bool(link.series_master_id))
    return out


def test_a_mixed_message_gives_the_board_and_links_of_one_message_per_change(graph, dime, services):
    packed, single = people(graph, services, 2)
    before = {p["id"]: scenario_setup(graph, services, p) for p in (packed, single)}
    items = {p["id"]: scenario_changes(graph, services, p, before[p["id"]]) for p in (packed, single)}
    graph.reset_requests()

    post(items[packed["id"]])  # one POST: one packed message
    deliver(services)
    packed_requests = len(graph.requests)
    graph.reset_requests()
    for one in items[single["id"]]:
        post([one])  # one message per change: apply_notification each
    deliver(services)
    single_requests = len(graph.requests)

    expected = {
        "Edited (moved)",
        "Same",
        "New 0",
        "New 1",
        "New 2",
        "Came back",
        "Stand-up",  # its three instances
    }
    assert {subject for subject, _ in board_of(dime, packed)} == expected
    assert len(board_of(dime, packed)) == len(expected) + 2
    assert board_of(dime, packed) == board_of(dime, single)
    assert links_of(graph, dime, services, packed) == links_of(graph, dime, services, single)
    assert all(fresh and on_board for fresh, _, on_board, _ in links_of(graph, dime, services, packed).values())
    assert len(links_of(graph, dime, services, packed)) == len(expected) + 2
    for person in (packed, single):
        assert not state_store(services).is_tombstoned(person["id"], before[person["id"]]["tombstoned"]["id"])
        assert state_store(services).is_tombstoned(person["id"], before[person["id"]]["deleted"]["id"])
        failed = [t for t in services.store.transactions_of(person["id"]) if t.status is Status.FAILED]
        assert failed == []
    assert packed_requests < single_requests


def test_a_throttled_proof_is_that_events_transient_failure_only(graph, dime, services, no_waits):
    (person,) = people(graph, services, 1)
    first = graph.create_event(person["id"], subject="Monday", **slot("2026-11-16T08:00:00"))
    second = graph.create_event(person["id"], subject="Thursday", **slot("2026-11-26T08:00:00"))
    third = graph.create_event(person["id"], subject="Thursday too", **slot("2026-11-26T10:00:00"))
    post([item(person, e, "created") for e in (first, second, third)])
    # the calendarView around Monday (its range starts the day before) answers 429, five times
    graph.fail_next(count=pipeline_read.MEMBER_ATTEMPTS, status=429, path_contains="2026-11-15T08")

    run = deliver(services)

    assert run.succeeded == 2  # the packed message, then Monday's change queued on its own
    assert len(no_waits) == pipeline_read.MEMBER_ATTEMPTS - 1
    upserted = [p["Subject"] for procedure, p in dime.calls if procedure == UPSERT_PROCEDURE]
    assert sorted(upserted) == ["Monday", "Thursday", "Thursday too"]  # each written once
    assert len(dime.requests) == 2  # Thursday's pair in one /import, Monday's alone


def test_a_call_dime_refuses_fails_alone_and_the_others_reach_the_board(graph, dime, services):
    (person,) = people(graph, services, 1)
    events = [graph.create_event(person["id"], subject=f"Job {n}") for n in range(3)]
    refused = appointment_guid(TENANT_ID, person["id"], events[1]["id"])
    dime.refuse_call(refused, "Invalid parameter", "Location is not a known site.")

    post([item(person, e, "created") for e in events])
    run = deliver(services)

    assert run.succeeded == 1  # a permanent failure is a failed transaction, never a redelivery
    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in events} - {refused}
    assert len(dime.requests) == 1 + 3  # the page's import, then each event's own
    failed = [t for t in services.store.transactions_of(person["id"]) if t.status is Status.FAILED]
    assert [(t.event_id, t.appointment_guid) for t in failed] == [(events[1]["id"], refused)]
    assert "Location is not a known site" in failed[0].message
    assert services.store.get_link(person["id"], events[1]["id"]) is None
    assert all(services.store.get_link(person["id"], e["id"]) for e in (events[0], events[2]))


def test_an_event_another_message_works_on_waits_for_it_and_is_written_once(graph, dime, services):
    """Duplicates of one event in two messages handled at once (the host's batch): the second
    message runs it as a batch of one that waits its turn and finds the first one's link."""
    (person,) = people(graph, services, 1)
    events = [graph.create_event(person["id"], subject=f"Job {n}") for n in range(4)]
    post([item(person, e, "created") for e in events[:3]])
    post([item(person, e, "created") for e in events[2:]])

    deliver(services)

    upserted = sorted(p["Subject"] for procedure, p in dime.calls if procedure == UPSERT_PROCEDURE)
    assert upserted == ["Job 0", "Job 1", "Job 2", "Job 3"]


def test_a_mailbox_not_onboarded_is_dropped_and_the_others_of_the_message_still_go(graph, dime, services):
    (person,) = people(graph, services, 1)
    stranger = graph.add_user(mail="stranger@contoso.com")
    track(services, stranger)
    mine = [graph.create_event(person["id"], subject=f"Job {n}") for n in range(2)]
    theirs = graph.create_event(stranger["id"], subject="Not ours")
    items = [item(person, e, "created") for e in mine] + [item(stranger, theirs, "created")]
    post(items)
    delete_resource_row(services.store, stranger["id"])  # removed by an administrator meanwhile
    run = deliver(services)

    assert run.succeeded == 1
    assert {p["Subject"] for p in dime.appointments.values()} == {"Job 0", "Job 1"}
    assert list(services.store.transactions_of(stranger["id"])) == []


def test_a_member_graph_refuses_for_good_is_that_events_failed_transaction(graph, dime, services):
    (person,) = people(graph, services, 1)
    events = [graph.create_event(person["id"], subject=f"Job {n}") for n in range(3)]
    graph.fail_next(count=1, status=403, retry_after=None, path_contains=events[0]["id"])

    post([item(person, e, "created") for e in events])
    run = deliver(services)

    assert run.succeeded == 1  # nothing queued again: a 403 is not transient
    assert {p["Subject"] for p in dime.appointments.values()} == {"Job 1", "Job 2"}
    failed = [t for t in services.store.transactions_of(person["id"]) if t.status is Status.FAILED]
    assert [(t.event_id, t.error_code) for t in failed] == [(events[0]["id"], "GRAPH_FORBIDDEN")]


def test_n_new_events_over_m_mailboxes_cost_one_import_and_two_graph_requests_per_twenty(graph, dime, services):
    """JSON batching takes members addressing different users: a message's mailboxes share their
    `$batch` requests and its `/import`; links and transactions stay per mailbox (partitions)."""
    crew = people(graph, services, 5)
    events = {
        person["id"]: [
            graph.create_event(person["id"], subject=f"Job {n}", **slot(f"2026-11-{10 + n}T08:00:00")) for n in range(9)
        ]
        for person in crew
    }
    graph.reset_requests()

    post([item(person, event, "created") for person in crew for event in events[person["id"]]])  # 45: one message
    run = deliver(services)

    assert run.succeeded == 1  # one message, nothing requeued
    assert len(dime.requests) == 1  # one /import for the five mailboxes
    # reads 20, 20, 5; then the proofs: each mailbox's nine days are two week-long listings
    # (core/proof_windows.py), 10 members in one request (one per event before: 20, 20, 5)
    assert [r.path for r in graph.requests] == ["/v1.0/$batch"] * 4
    reads = [m for m in graph.batch_members if "calendarView" not in m.path]
    proofs = [m for m in graph.batch_members if "calendarView" in m.path]
    assert len(reads) == 45 and len(proofs) == 10
    assert {m.path.split("/")[3] for m in reads} == {person["id"] for person in crew}
    for person in crew:
        mine = events[person["id"]]
        links = {link.event_id: link.change_key for link in services.store.links_of(person["id"])}
        assert links == {e["id"]: e["changeKey"] for e in mine}
        succeeded = [t.event_id for t in services.store.transactions_of(person["id"]) if t.status is Status.SUCCEEDED]
        assert sorted(succeeded) == sorted(e["id"] for e in mine)
        guids = {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in mine}
        assert {g for g, p in dime.appointments.items() if p["ResourceEmail"] == person["mail"]} == guids


def test_a_member_throttled_in_one_mailbox_requeues_only_its_event(graph, dime, services, no_waits):
    first, second = people(graph, services, 2)
    mine = [graph.create_event(first["id"], subject=f"First {n}", **slot(f"2026-11-1{n}T08:00:00")) for n in range(3)]
    theirs = [
        graph.create_event(second["id"], subject=f"Second {n}", **slot(f"2026-11-1{n}T10:00:00")) for n in range(3)
    ]
    post([item(first, e, "created") for e in mine] + [item(second, e, "created") for e in theirs])
    # the read of one event of the second mailbox answers 429, five times: its retries included
    graph.fail_next(count=pipeline_read.MEMBER_ATTEMPTS, status=429, path_contains=theirs[1]["id"])

    run = deliver(services)

    assert run.succeeded == 2  # the packed message, then the throttled event's change queued on its own
    assert len(no_waits) == pipeline_read.MEMBER_ATTEMPTS - 1
    upserted = [p["Subject"] for procedure, p in dime.calls if procedure == UPSERT_PROCEDURE]
    assert sorted(upserted) == sorted(e["subject"] for e in mine + theirs)  # each written once
    assert len(dime.requests) == 2  # five events of two mailboxes in one /import, the throttled one alone
    for person, events in ((first, mine), (second, theirs)):
        assert {link.event_id for link in services.store.links_of(person["id"])} == {e["id"] for e in events}


def test_a_message_over_two_mailboxes_gives_the_boards_and_links_of_one_message_per_change(graph, dime, services):
    packed = people(graph, services, 2)
    single = [graph.add_user(mail=f"single{n}@contoso.com") for n in range(2)]
    for user in single:
        track(services, user)
    crew = packed + single
    before = {p["id"]: scenario_setup(graph, services, p) for p in crew}
    items = {p["id"]: scenario_changes(graph, services, p, before[p["id"]]) for p in crew}

    post([change for person in packed for change in items[person["id"]]])  # one POST: one packed message
    deliver(services)
    for person in single:
        for one in items[person["id"]]:
            post([one])  # one message per change: apply_notification each
    deliver(services)

    for mine, theirs in zip(packed, single, strict=True):
        assert len(board_of(dime, mine)) == 9
        assert board_of(dime, mine) == board_of(dime, theirs)
        assert links_of(graph, dime, services, mine) == links_of(graph, dime, services, theirs)
        assert all(fresh and on_board for fresh, _, on_board, _ in links_of(graph, dime, services, mine).values())
    for person in crew:
        assert not state_store(services).is_tombstoned(person["id"], before[person["id"]]["tombstoned"]["id"])
        assert state_store(services).is_tombstoned(person["id"], before[person["id"]]["deleted"]["id"])
        assert [t for t in services.store.transactions_of(person["id"]) if t.status is Status.FAILED] == []


def test_batches_over_the_same_mailboxes_in_any_order_hold_each_mailbox_for_its_members_without_deadlock():
    """Each mailbox of a $batch is held for min(4, its members), taken in sorted order: batches
    naming the same mailboxes in opposite orders both finish, and no mailbox ever exceeds 4."""
    from shared.adapters.graph import GraphGateway

    async def scenario() -> dict[str, int]:
        gateway = GraphGateway("http://graph.invalid", credential=lambda: None)  # type: ignore[arg-type,return-value]

        async def batch(weights: dict[str, int]) -> None:
            async with gateway._hold(weights):
                for mailbox in weights:
                    assert gateway._limits[mailbox.lower()].in_use <= 4
                await asyncio.sleep(0.01)

        shapes = [
            {"a": 4, "b": 4},
            {"b": 4, "a": 4},
            {"a": 3, "b": 2},
            {"b": 4, "a": 1},
            {"B": 2, "c": 20},
            {"c": 1, "a": 4},
            {"a": 2},
        ]
        await asyncio.wait_for(asyncio.gather(*(batch(shape) for shape in shapes * 3)), timeout=10)
        return {name: limit.peak for name, limit in gateway._limits.items() if not limit.in_use}

    peaks = asyncio.run(scenario())
    assert set(peaks) == {"a", "b", "c"} and max(peaks.values()) == 4


def test_two_spellings_of_one_mailbox_in_a_message_write_each_event_once(graph, dime, services):
    """The webhook lower-cases mailbox ids, but a queued message may come from elsewhere (an older
    payload sent again): the resources table is keyed on the lower-cased id, so both spellings are
    one mailbox, and an event of both shares is batched by one of them only."""
    (person,) = people(graph, services, 1)
    events = [graph.create_event(person["id"], subject=f"Job {n}", **slot(f"2026-11-1{n}T08:00:00")) for n in range(3)]
    changes = [
        {"mailboxId": mailbox, "eventId": e["id"], "changeType": "created", "changeKey": e["changeKey"]}
        for mailbox in (person["id"], person["id"].upper())
        for e in events
    ]
    services.queues.send(NOTIFICATIONS_QUEUE, {"changes": changes})

    run = deliver(services)

    assert run.succeeded == 1
    upserted = sorted(p["Subject"] for procedure, p in dime.calls if procedure == UPSERT_PROCEDURE)
    assert upserted == ["Job 0", "Job 1", "Job 2"]
    assert {link.event_id for link in services.store.links_of(person["id"])} == {e["id"] for e in events}


def test_two_messages_of_one_mailbox_in_flight_together_share_their_batch_requests(graph, dime, services):
    """Reads shared across messages: two packed messages of one busy mailbox, worked on at once in
    one process, ride the same `$batch` requests (formerly each its own, then its own proofs), and
    the mailbox never has more than 4 requests in flight at Graph (counted by the fake over every
    client, as Graph counts them)."""
    from shared.usecases.outlook_to_dime.notification_batch import apply_notifications

    (person,) = people(graph, services, 1)
    events = [
        graph.create_event(person["id"], subject=f"Job {n}", **slot(f"2026-11-{10 + n}T08:00:00")) for n in range(8)
    ]

    def change(event: dict) -> dict:
        return {"mailboxId": person["id"], "eventId": event["id"], "changeType": "created", "changeKey": None}

    first, second = {"changes": [change(e) for e in events[:4]]}, {"changes": [change(e) for e in events[4:]]}
    graph.delay_next(0.2, count=100, path_contains="$batch")  # Graph's ~250 ms per $batch, roughly
    graph.reset_requests()

    async def together() -> None:
        await asyncio.gather(apply_notifications(first, services), apply_notifications(second, services))

    asyncio.run(together())
    shared_requests = [r for r in graph.requests if r.path.endswith("$batch")]

    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in events}
    assert len(shared_requests) == 2  # one $batch of the 8 reads, one of the 8 proofs (separately: 4)
    assert graph.max_in_flight[person["id"].lower()] <= 4 and graph.concurrency_refusals == 0


def test_new_events_clear_only_the_tombstones_that_exist(graph, dime, services):
    """Seven new events, one of which we deleted before (a tombstone): its tombstone goes, and the
    others cost no blind tombstone delete each (one query beside the links instead)."""
    from tests.storage_counter import StorageCounter

    (person,) = people(graph, services, 1)
    events = [
        graph.create_event(person["id"], subject=f"Job {n}", **slot(f"2026-11-{10 + n}T08:00:00")) for n in range(7)
    ]
    store = state_store(services)
    store.add_tombstone(person["id"], events[3]["id"], services.clock())
    store.add_tombstone(person["id"], "an-event-not-in-this-message", services.clock())
    counter = StorageCounter.install()
    counter.reset()

    post([item(person, event, "created") for event in events])
    deliver(services)

    assert {subject for subject, _ in board_of(dime, person)} == {f"Job {n}" for n in range(7)}
    assert not store.is_tombstoned(person["id"], events[3]["id"])
    assert store.is_tombstoned(person["id"], "an-event-not-in-this-message")
    assert counter.table_requests().get("DELETE syncstate", 0) == 1


def test_reads_and_proofs_pending_together_ride_one_batch_request(graph, dime, services):
    """An event read (one message's first step) and a calendarView proof (another message's second
    step) of one mailbox, asked at the same moment, go in one `$batch`, holding the mailbox's
    slots once (formerly one request per kind: each kind had its own coalescer)."""
    from shared.usecases.outlook_to_dime.pipeline.coalesce import shared

    (person,) = people(graph, services, 1)
    first, second = (
        graph.create_event(person["id"], subject=f"Job {n}", **slot(f"2026-11-1{n}T08:00:00")) for n in (1, 2)
    )
    where = ("2026-11-11T00:00:00", "2026-11-13T00:00:00")
    graph.reset_requests()

    async def together() -> tuple[dict, dict]:
        return await asyncio.gather(
            shared(services.graph, "read_events_batch").ask([(person["id"], first["id"])]),
            shared(services.graph, "calendar_views_of").ask([(person["id"], where)]),
        )

    read, views = asyncio.run(together())
    batches = [r for r in graph.requests if r.path.endswith("$batch")]

    assert len(batches) == 1
    assert read[(person["id"], first["id"])].body["subject"] == "Job 1"
    listed = {item["id"] for item in views[(person["id"], where)].body["value"]}
    assert listed == {first["id"], second["id"]}


def test_messages_of_one_mailbox_worked_on_together_read_its_resource_once(graph, dime, services):
    """A queue receive hands out many messages of a busy mailbox at once: worked on together in one
    process, they share one read of its resource row (formerly one read each)."""
    from shared.usecases.outlook_to_dime.notification_batch import apply_notifications
    from tests.storage_counter import StorageCounter

    (person,) = people(graph, services, 1)
    events = [
        graph.create_event(person["id"], subject=f"Job {n}", **slot(f"2026-11-{10 + n}T08:00:00")) for n in range(6)
    ]
    messages = [
        {"changes": [{"mailboxId": person["id"], "eventId": e["id"], "changeType": "created", "changeKey": None}]}
        for e in events
    ]
    counter = StorageCounter.install()
    counter.reset()

    async def together() -> None:
        await asyncio.gather(*(apply_notifications(message, services) for message in messages))

    asyncio.run(together())

    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in events}
    assert counter.table_requests().get("GET resources", 0) == 1
