"""Reconcile: the nightly check-up of every tracked appointment, through function_app's timer."""

from __future__ import annotations

import asyncio

import pytest

import function_app
import shared.usecases.outlook_to_dime.pipeline.read as pipeline_read
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.core.ids import appointment_guid
from shared.core.outlook_to_dime.appointments import DELETE_PROCEDURE, UPSERT_PROCEDURE
from shared.names import RESYNC_QUEUE
from shared.usecases.outlook_to_dime.reconcile import run_reconcile
from tests.conftest import TENANT_ID, drain_queue
from tests.host import fire_timer, run_queue
from tests.linkseed import add_mailbox, seed_linked_events


@pytest.fixture
def person(graph, services):
    return add_mailbox(graph, services, mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")


@pytest.fixture
def waits(monkeypatch):
    """Record the Retry-After waits instead of sleeping them."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(pipeline_read, "sleep", fake_sleep)
    return recorded


def reconcile_timer():
    fire_timer(function_app.reconcile_timer, function_app.services())


def upserts(dime):
    return [params for procedure, params in dime.calls if procedure == UPSERT_PROCEDURE]


def deleted_guids(dime):
    return sorted(params["AppointmentGuid"] for procedure, params in dime.calls if procedure == DELETE_PROCEDURE)


def run_record(services, mailbox_id):
    return SyncStateStore(services.store).run(mailbox_id, "reconcile")


def test_a_thousand_unchanged_links_cost_sixty_requests_and_no_write_then_k_changes_k_writes(
    graph, dime, services, person
):
    events = seed_linked_events(graph, services, person, 1000)
    graph.reset_requests()

    reconcile_timer()

    # 50 $batch of 20 reads, and the window's calendarView once, ids only (100 per page): 10 pages
    listing = [r for r in graph.requests if r.path.endswith("/calendar/calendarView")]
    assert len(listing) == 10 and all(r.query.get("$select") == "id" for r in listing)
    assert len(graph.requests) == 60
    assert all(r.path == "/v1.0/$batch" for r in graph.requests if r not in listing)
    assert len(graph.batch_members) == 1000
    member = graph.batch_members[0]
    assert "$select" in member.query and 'IdType="ImmutableId"' in member.headers["prefer"]
    assert dime.calls == []
    record = run_record(services, person["id"])
    assert (record["Outcome"], record["Changes"], record["Writes"], record["GraphRequests"]) == (
        "completed",
        1000,
        0,
        60,
    )

    changed = events[100:107]
    for event in changed:
        graph.update_event(person["id"], event["id"], subject=event["subject"] + " (moved)")
    graph.reset_requests()

    reconcile_timer()

    assert len(upserts(dime)) == len(changed)
    assert {u["Subject"] for u in upserts(dime)} == {e["subject"] + " (moved)" for e in changed}
    assert len(graph.requests) == 60


def test_gone_events_are_deleted_and_throttled_members_are_asked_again_after_retry_after(
    graph, dime, services, person, waits
):
    events = seed_linked_events(graph, services, person, 10)
    for event in events[:2]:
        graph.delete_event(person["id"], event["id"])
    graph.fail_next(count=3, status=429, retry_after=1, path_contains="/events/")
    graph.reset_requests()

    reconcile_timer()

    assert waits == [1.0]  # Retry-After honoured once for the three throttled members
    assert len(graph.requests) == 3 and len(graph.batch_members) == 13  # and the window's listing
    assert deleted_guids(dime) == sorted(appointment_guid(TENANT_ID, person["id"], e["id"]) for e in events[:2])
    assert upserts(dime) == []
    assert len(list(services.store.links_of(person["id"]))) == 8


def test_an_event_deleted_but_still_readable_is_deleted_because_the_calendar_no_longer_lists_it(
    graph, dime, services, person
):
    """graph.md: a deleted event may still answer GET (unverified; the fake plays it). An event
    deleted while its appointment was being written (the delete found no link yet) is then caught
    by the reconcile only: it reads 200, but the window's calendarView no longer lists it."""
    graph.deleted_get_status = 200
    events = seed_linked_events(graph, services, person, 10)
    graph.delete_event(person["id"], events[0]["id"])

    reconcile_timer()

    assert deleted_guids(dime) == [appointment_guid(TENANT_ID, person["id"], events[0]["id"])]
    assert upserts(dime) == []
    assert len(list(services.store.links_of(person["id"]))) == 9
    record = run_record(services, person["id"])
    assert record["Deletes"] == 1 and record["Healed"] == 1  # a copy only the reconcile could see: healed


def test_the_breaker_stops_reconcile_from_deleting_most_links(graph, dime, services, person):
    events = seed_linked_events(graph, services, person, 10)
    for event in events[:9]:
        graph.delete_event(person["id"], event["id"])

    reconcile_timer()

    assert dime.calls == []
    assert len(list(services.store.links_of(person["id"]))) == 10
    [alert] = [t for t in services.store.transactions_of(person["id"]) if t.status.value == "failed"]
    assert alert.error_code == "CIRCUIT_BREAKER_TRIPPED" and "9 of 10" in alert.message
    assert run_record(services, person["id"])["Outcome"] == "breaker-tripped"


def test_consent_withdrawn_is_a_rule_not_an_absence_so_reconcile_deletes(graph, dime, services, person):
    from dataclasses import replace

    from shared.core.consent import Consent

    seed_linked_events(graph, services, person, 3)
    resource = services.store.get_resource(person["id"])
    services.store.put_resource(replace(resource, consent=Consent.parse(False, "busy", "normal")))

    reconcile_timer()

    assert len(deleted_guids(dime)) == 3
    assert list(services.store.links_of(person["id"])) == []


def test_a_pass_out_of_time_continues_from_its_cursor_through_the_resync_queue(graph, dime, services, person):
    seed_linked_events(graph, services, person, 45)
    graph.reset_requests()

    [first] = asyncio.run(run_reconcile(services, budget_seconds=0))  # one $batch, then the place is kept

    assert first.outcome == "paused" and first.changes == 20
    assert SyncStateStore(services.store).reconcile_cursor(person["id"])
    queued = drain_queue(services, RESYNC_QUEUE)
    assert queued == [{"mailboxId": person["id"], "reason": "reconcile-continue"}]
    services.queues.send(RESYNC_QUEUE, queued[0])

    run = run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)

    assert run.succeeded == 1
    assert len(graph.batch_members) == 45  # every link read exactly once over the two runs
    assert SyncStateStore(services.store).reconcile_cursor(person["id"]) is None
    assert run_record(services, person["id"])["Outcome"] == "completed"
    assert dime.calls == []
