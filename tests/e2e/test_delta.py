"""Delta alone keeps Dime.Scheduler in step: no subscriptions, no notifications at all.

Everything runs through function_app's delta timer (and the resync queue function), against real
Azurite and the stateful Graph and Dime.Scheduler fakes.
"""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app
import shared.adapters.graph as graph_adapter
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.core.ids import appointment_guid
from shared.core.outlook_to_dime.appointments import DELETE_PROCEDURE, UPSERT_PROCEDURE
from shared.core.resources import resource_from_user
from shared.names import ADMIN_ROUTE_PREFIX, RESYNC_QUEUE
from shared.usecases.outlook_to_dime.delta_sync import run_delta
from tests.conftest import MANAGE_HEADERS, TENANT_ID
from tests.host import call_function, fire_timer, run_queue


def add_mailbox(graph, services, **user):
    person = graph.add_user(**user)
    services.store.add_resource(resource_from_user(person, services.settings.default_consent))
    return person


@pytest.fixture
def person(graph, services):
    return add_mailbox(graph, services, mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")


def delta_timer():
    fire_timer(function_app.delta_timer, function_app.services())


def delta_with_budget(services, seconds):
    import asyncio

    return asyncio.run(run_delta(services, budget_seconds=seconds))


def upserts(dime):
    return [params for procedure, params in dime.calls if procedure == UPSERT_PROCEDURE]


def deleted_guids(dime):
    return sorted(params["AppointmentGuid"] for procedure, params in dime.calls if procedure == DELETE_PROCEDURE)


def guid(person, event_id):
    return appointment_guid(TENANT_ID, person["id"], event_id)


def run_record(services, mailbox_id, kind="delta"):
    return SyncStateStore(services.store).run(mailbox_id, kind)


def failed_codes(services, mailbox_id):
    return [t.error_code for t in services.store.transactions_of(mailbox_id) if t.status.value == "failed"]


def test_creates_edits_and_deletes_reach_dime_through_delta_alone(graph, dime, services, person):
    assert graph.subscriptions() == []
    events = [graph.create_event(person["id"], subject=f"Visit {n}") for n in range(3)]
    delta_timer()
    assert sorted(u["Subject"] for u in upserts(dime)) == ["Visit 0", "Visit 1", "Visit 2"]

    dime.reset_calls()
    graph.update_event(person["id"], events[0]["id"], subject="Visit 0, moved")
    graph.delete_event(person["id"], events[1]["id"])
    delta_timer()

    assert [u["Subject"] for u in upserts(dime)] == ["Visit 0, moved"]
    assert deleted_guids(dime) == [guid(person, events[1]["id"])]
    assert set(dime.appointments) == {guid(person, events[0]["id"]), guid(person, events[2]["id"])}
    record = run_record(services, person["id"])
    assert (record["Outcome"], record["Round"], record["Writes"], record["Deletes"]) == (
        "completed",
        "incremental",
        1,
        1,
    )
    # the delta page, one $batch reading the changed event in full (delta items are signals), and
    # one $batch confirming the removal (404)
    assert record["GraphRequests"] == 3

    dime.reset_calls()
    graph.reset_requests()
    delta_timer()
    assert dime.calls == []
    assert len(graph.requests) == 1


def test_an_idle_run_over_ten_mailboxes_costs_one_graph_request_each(graph, dime, services):
    people = [add_mailbox(graph, services) for _ in range(10)]
    for person in people:
        graph.create_event(person["id"])
    delta_timer()
    assert len(upserts(dime)) == 10
    graph.reset_requests()
    dime.reset_calls()

    delta_timer()

    assert len(graph.requests) == 10
    assert all(r.path.endswith("/calendarView/delta") and "$deltatoken" in r.query for r in graph.requests)
    assert dime.calls == []
    prefer = graph.requests[0].headers["prefer"]
    assert 'IdType="ImmutableId"' in prefer and 'outlook.timezone="UTC"' in prefer and "odata.maxpagesize" in prefer


def test_a_disabled_mailbox_is_not_read(graph, dime, services):
    from dataclasses import replace

    from shared.core.consent import Consent

    person = add_mailbox(graph, services)
    resource = services.store.get_resource(person["id"])
    services.store.put_resource(replace(resource, consent=Consent.parse(False, "busy", "normal")))
    graph.create_event(person["id"])
    delta_timer()
    assert graph.requests == [] and dime.calls == []


@pytest.mark.parametrize("resync_required", [False, True], ids=["410-syncStateNotFound", "resyncRequired"])
def test_an_expired_token_mid_round_recovers_and_deletes_exactly_what_was_deleted(
    graph, dime, services, person, monkeypatch, resync_required
):
    monkeypatch.setattr(graph_adapter, "DELTA_PAGE_SIZE", 5)
    events = [graph.create_event(person["id"], subject=f"Job {n}") for n in range(12)]
    delta_timer()
    assert len(upserts(dime)) == 12
    dime.reset_calls()

    edited = [graph.update_event(person["id"], e["id"], subject=f"Job {n} v2") for n, e in enumerate(events[:6])]
    gone = [e["id"] for e in events[9:]]
    for event_id in gone:
        graph.delete_event(person["id"], event_id)

    [first] = delta_with_budget(services, 0)  # one page of the incremental round, then its place is saved
    assert first.outcome == "paused"
    assert SyncStateStore(services.store).delta_state(person["id"]).next_link
    assert len(upserts(dime)) == 5

    assert graph.expire_delta_tokens(person["id"], resync_required=resync_required) > 0
    delta_timer()

    assert deleted_guids(dime) == sorted(guid(person, event_id) for event_id in gone)
    assert {u["Subject"] for u in upserts(dime)} == {f"Job {n} v2" for n in range(6)}
    assert set(dime.appointments) == {guid(person, e["id"]) for e in events[:9]}
    assert {u["Subject"] for u in upserts(dime)} >= {e["subject"] for e in edited}
    record = run_record(services, person["id"])
    assert (record["Outcome"], record["Round"], record["Deletes"]) == ("completed", "token-expired", 3)
    assert failed_codes(services, person["id"]) == []


def test_removed_outside_the_window_deletes_nothing(graph, dime, services, person):
    far = graph.create_event(person["id"], start="2029-01-10T09:00:00", end="2029-01-10T10:00:00")
    delta_timer()
    assert dime.calls == []
    graph.reset_requests()

    graph.update_event(person["id"], far["id"], subject="Still far away")  # Graph reports it @removed
    graph.delete_event(person["id"], far["id"])
    delta_timer()

    assert dime.calls == []
    assert len(graph.requests) == 1  # not linked: not even read again


def test_a_linked_event_moved_out_of_the_window_is_deleted_by_the_decision(graph, dime, services, person):
    event = graph.create_event(person["id"])
    delta_timer()
    graph.update_event(person["id"], event["id"], start="2029-01-10T09:00:00", end="2029-01-10T10:00:00")

    delta_timer()

    assert deleted_guids(dime) == [guid(person, event["id"])]
    [delete] = [t for t in services.store.transactions_of(person["id"]) if t.operation == "delete"]
    assert delete.reason == "outside-window"


def test_the_breaker_stops_a_mass_delete(graph, dime, services, person):
    events = [graph.create_event(person["id"], subject=f"Job {n}") for n in range(10)]
    delta_timer()
    dime.reset_calls()
    for event in events[:8]:
        graph.delete_event(person["id"], event["id"])

    delta_timer()

    assert deleted_guids(dime) == []
    assert len(list(services.store.links_of(person["id"]))) == 10
    [alert] = [t for t in services.store.transactions_of(person["id"]) if t.status.value == "failed"]
    assert alert.error_code == "CIRCUIT_BREAKER_TRIPPED"
    assert "8 of 10" in alert.message
    assert len(alert.payload["eventIds"]) == 8
    assert run_record(services, person["id"])["Outcome"] == "breaker-tripped"


def test_the_breaker_stops_an_empty_full_listing(graph, dime, services, person):
    events = [graph.create_event(person["id"]) for _ in range(3)]
    delta_timer()
    dime.reset_calls()
    for event in events:
        graph.delete_event(person["id"], event["id"])
    graph.expire_delta_tokens(person["id"])

    delta_timer()

    assert deleted_guids(dime) == []
    assert len(list(services.store.links_of(person["id"]))) == 3
    assert failed_codes(services, person["id"]) == ["CIRCUIT_BREAKER_TRIPPED"]
    record = run_record(services, person["id"])
    assert record["Outcome"] == "breaker-tripped" and "no events" in record["Breaker"]


def test_a_paused_full_listing_continues_and_deletes_nothing_it_saw(graph, dime, services, person, monkeypatch):
    monkeypatch.setattr(graph_adapter, "DELTA_PAGE_SIZE", 5)
    events = [graph.create_event(person["id"], subject=f"Job {n}") for n in range(12)]
    outcomes = [delta_with_budget(services, 0)[0].outcome for _ in range(3)]

    assert outcomes == ["paused", "paused", "completed"]
    assert len(upserts(dime)) == 12 and deleted_guids(dime) == []
    assert SyncStateStore(services.store).seen(person["id"]) == set()  # cleared once finished
    assert len(list(services.store.links_of(person["id"]))) == len(events)


def test_a_dime_failure_is_queued_for_the_worker_not_lost(graph, dime, services, person):
    from shared.names import NOTIFICATIONS_QUEUE
    from tests.conftest import drain_queue

    event = graph.create_event(person["id"])
    dime.fail_next(status=503)
    delta_timer()

    [queued] = drain_queue(services, NOTIFICATIONS_QUEUE)
    assert (queued["eventId"], queued["changeType"]) == (event["id"], "updated")
    assert run_record(services, person["id"])["Errors"] == 1


def test_admin_resync_queues_a_message_the_resync_function_runs(graph, dime, services, person):
    graph.create_event(person["id"], subject="Queued")
    request = func.HttpRequest(
        "POST",
        f"/api/{ADMIN_ROUTE_PREFIX}/resources/{person['id']}/resync",
        body=b"",
        route_params={"mailbox": person["id"]},
        headers=MANAGE_HEADERS,
    )
    response = call_function(function_app.manage_resource_resync, request)
    assert response.status_code == 202
    assert json.loads(response.get_body()) == {"queued": True, "mailboxId": person["id"], "reason": "admin"}

    run = run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)

    assert run.succeeded == 1 and run.failed == 0
    assert [u["Subject"] for u in upserts(dime)] == ["Queued"]
    assert run_record(services, person["id"])["Reason"] == "admin"


def test_admin_resync_of_an_unknown_mailbox_is_404(services):
    request = func.HttpRequest(
        "POST", "/api/x", body=b"", route_params={"mailbox": "nobody@contoso.com"}, headers=MANAGE_HEADERS
    )
    assert call_function(function_app.manage_resource_resync, request).status_code == 404


def test_a_resync_message_from_lifecycle_runs_delta(graph, dime, services, person):
    graph.create_event(person["id"])
    services.queues.send(RESYNC_QUEUE, {"mailboxId": person["id"], "reason": "missed"})
    run = run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)
    assert run.succeeded == 1 and len(upserts(dime)) == 1


def test_a_consent_change_resync_lists_the_window_again(graph, dime, services, person):
    from dataclasses import replace

    from shared.core.consent import Consent

    graph.create_event(person["id"], subject="Free slot", show_as="free")
    delta_timer()
    assert dime.calls == []
    resource = services.store.get_resource(person["id"])
    services.store.put_resource(replace(resource, consent=Consent.parse(True, "free,busy", "normal")))
    delta_timer()
    assert dime.calls == []  # nothing changed in Outlook: an incremental round reports nothing

    services.queues.send(RESYNC_QUEUE, {"mailboxId": person["id"], "reason": "consentChanged"})
    run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)

    assert [u["Subject"] for u in upserts(dime)] == ["Free slot"]
    assert run_record(services, person["id"])["Round"] == "requested-consentChanged"
