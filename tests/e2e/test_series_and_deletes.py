"""Recurring series, confirmed deletes, tombstones, second calendars and the import's AppointmentId,
through the functions against the faithful fakes (graph.md, dimescheduler.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

import function_app
from shared.core.ids import appointment_guid
from shared.core.outlook_to_dime.appointments import DELETE_PROCEDURE, UPSERT_PROCEDURE
from shared.names import NOTIFICATIONS_QUEUE
from tests.conftest import TENANT_ID, notification_item, track
from tests.host import run_queue


def notify(services, person, event_id, change_type="updated", change_key=None):
    item = notification_item(person["id"], event_id, change_type, change_key)
    body = json.dumps({"value": [item]}).encode()
    assert function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body)).status_code == 202
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    assert run.poisoned == 0, run.errors


def upserts(dime):
    return [params for procedure, params in dime.calls if procedure == UPSERT_PROCEDURE]


def deletes(dime):
    return [params for procedure, params in dime.calls if procedure == DELETE_PROCEDURE]


def guid(person, event_id):
    return appointment_guid(TENANT_ID, person["id"], event_id)


def day(offset: int, hour: int, minute: int = 0) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return today + timedelta(days=offset, hours=hour, minutes=minute)


@pytest.fixture
def person(graph, services):
    user = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    track(services, user)  # onboarded, with the subscription notification_item() names
    return user


def test_a_daily_stand_up_reaches_the_board_from_one_master_notification(graph, dime, services, person):
    master = graph.create_series(person["id"], "Stand-up", day(1, 9), day(1, 9, 15), count=5)

    notify(services, person, master["id"], "created")

    instances = graph.instances(person["id"], master["id"])
    assert len(instances) == 5
    assert set(dime.appointments) == {guid(person, i["id"]) for i in instances}  # never the master
    assert [u["Subject"] for u in upserts(dime)] == ["Stand-up"] * 5
    links = [services.store.get_link(person["id"], i["id"]) for i in instances]
    assert all(link is not None and link.series_master_id == master["id"] for link in links)

    # the same notification again (Graph sends three): nothing to write
    dime.reset_calls()
    notify(services, person, master["id"])
    assert dime.calls == []


def test_weekly_meeting_with_one_moved_instance_is_written_once(graph, dime, services, person):
    master = graph.create_series(
        person["id"], "Weekly review", day(2, 14), day(2, 15), pattern="weekly", count=4, show_as="busy"
    )
    notify(services, person, master["id"], "created")
    instances = graph.instances(person["id"], master["id"])
    dime.reset_calls()
    graph.reset_requests()

    moved = graph.update_instance(person["id"], instances[1]["id"], start=day(10, 16), end=day(10, 17))
    notify(services, person, master["id"])  # Graph notifies the master only

    assert [(u["ExchangeId"], u["Start"]) for u in upserts(dime)] == [
        (moved["id"], day(10, 16).strftime("%Y-%m-%d %H:%M:%SZ"))
    ]
    assert dime.appointments[guid(person, instances[1]["id"])]["Start"] == day(10, 16).strftime("%Y-%m-%d %H:%M:%SZ")
    assert deletes(dime) == []
    # GET of the master, one page of its instances (no read per instance)
    assert [r.path.rsplit("/", 1)[-1] for r in graph.requests][-1] == "instances"
    assert len(graph.requests) == 2


def test_a_cancelled_instance_and_then_a_deleted_series_leave_the_board(graph, dime, services, person):
    master = graph.create_series(person["id"], "Daily", day(1, 8), day(1, 8, 30), count=4)
    notify(services, person, master["id"], "created")
    instances = graph.instances(person["id"], master["id"])

    graph.cancel_instance(person["id"], instances[2]["id"])
    notify(services, person, master["id"])
    assert [d["AppointmentGuid"] for d in deletes(dime)] == [guid(person, instances[2]["id"])]
    assert len(dime.appointments) == 3

    graph.delete_event(person["id"], master["id"])
    notify(services, person, master["id"], "deleted")
    assert dime.appointments == {}
    assert list(services.store.links_of(person["id"])) == []


def test_a_series_deletion_over_the_breaker_deletes_nothing_and_says_so(graph, dime, services, person):
    master = graph.create_series(person["id"], "Daily", day(1, 8), day(1, 8, 30), count=8)
    notify(services, person, master["id"], "created")
    assert len(dime.appointments) == 8

    graph.delete_event(person["id"], master["id"])
    notify(services, person, master["id"], "deleted")

    assert len(dime.appointments) == 8  # 8 of 8 links is more than the breaker allows
    failed = [t for t in services.store.transactions_of(person["id"]) if t.status.value == "failed"]
    assert [t.error_code for t in failed] == ["CIRCUIT_BREAKER_TRIPPED"]
    assert failed[0].payload["source"] == "series" and failed[0].payload["seriesMasterId"] == master["id"]


def test_a_forged_deleted_notification_deletes_nothing(graph, dime, services, person):
    event = graph.create_event(person["id"], "Still here", start=day(1, 9), end=day(1, 10))
    notify(services, person, event["id"], "created")

    notify(services, person, event["id"], "deleted")

    assert deletes(dime) == [] and len(dime.appointments) == 1
    assert services.store.get_link(person["id"], event["id"]) is not None


@pytest.mark.parametrize("deleted_get_status", [404, 200])
def test_a_late_updated_notification_cannot_bring_a_deleted_event_back(
    graph, dime, services, person, deleted_get_status
):
    graph.deleted_get_status = deleted_get_status
    event = graph.create_event(person["id"], "Gone soon", start=day(1, 9), end=day(1, 10))
    notify(services, person, event["id"], "created")
    edited = graph.update_event(person["id"], event["id"], subject="Edited")
    graph.delete_event(person["id"], event["id"])
    notify(services, person, event["id"], "deleted")
    assert dime.appointments == {}
    dime.reset_calls()

    notify(services, person, event["id"], "updated", edited["changeKey"])  # the edit's, arriving late

    assert dime.calls == [] and dime.appointments == {}


def test_an_event_in_another_calendar_is_not_synchronised(graph, dime, services, person):
    other = graph.create_event(person["id"], "Birthday", start=day(3, 0), end=day(4, 0), calendar="Birthdays")

    notify(services, person, other["id"], "created")

    assert dime.calls == []
    assert services.store.get_link(person["id"], other["id"]) is None


def test_the_appointment_id_of_the_answer_is_kept_and_sent_on_update_and_delete(graph, dime, services, person):
    event = graph.create_event(person["id"], "Visit", start=day(1, 9), end=day(1, 10), show_as="oof")
    notify(services, person, event["id"], "created")
    (first,) = upserts(dime)
    assert first["AppointmentId"] == "0"
    link = services.store.get_link(person["id"], event["id"])
    assert link.appointment_id is not None and link.appointment_id != "0"

    edited = graph.update_event(person["id"], event["id"], subject="Visit, moved")
    notify(services, person, event["id"], "updated", edited["changeKey"])
    assert upserts(dime)[-1]["AppointmentId"] == link.appointment_id

    graph.delete_event(person["id"], event["id"])
    notify(services, person, event["id"], "deleted")
    (delete,) = deletes(dime)
    assert delete["AppointmentId"] == link.appointment_id
    assert (delete["Start"], delete["ShowAs"], delete["Subject"]) == (
        day(1, 9).strftime("%Y-%m-%d %H:%M:%SZ"),
        "4",
        "Visit, moved",
    )


def test_success_false_inside_a_200_is_a_failure_and_retried(graph, dime, services, person):
    event = graph.create_event(person["id"], "Visit", start=day(1, 9), end=day(1, 10))
    dime.fail_next(success_false=True)

    notify(services, person, event["id"], "created")  # the queue delivers again after the failure

    assert len(dime.appointments) == 1
    assert services.store.get_link(person["id"], event["id"]) is not None


def test_a_deleted_event_that_comes_back_is_synchronised_again_and_loses_its_tombstone(graph, dime, services, person):
    from shared.usecases.outlook_to_dime.pipeline.read import state_store

    event = graph.create_event(person["id"], "Restored", start=day(1, 9), end=day(1, 10))
    notify(services, person, event["id"], "created")
    graph.delete_event(person["id"], event["id"])
    notify(services, person, event["id"], "deleted")
    assert state_store(services).is_tombstoned(person["id"], event["id"])
    assert dime.appointments == {}

    # restored from Deleted Items (the immutable id is kept): it is in the calendar again
    graph.create_event(person["id"], "Restored", start=day(1, 9), end=day(1, 10), id=event["id"])
    notify(services, person, event["id"], "updated")

    assert list(dime.appointments) == [guid(person, event["id"])]
    assert not state_store(services).is_tombstoned(person["id"], event["id"])
