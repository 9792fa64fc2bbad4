"""Dime.Scheduler → Outlook on what Dime.Scheduler really posts, through the functions (publication
POST → Azurite queue → the queue function → FakeGraph), with DIME_TIME_ZONE=Europe/Brussels:

* a Webhook connector's payload (hbulens/dela README: Id, AppointmentNo, local StartDate without an
  offset, Resources, Category {Name}) lands at the right UTC time in the right calendar, with or
  without AppointmentGuid (then resolved by GET /appointment/{id} in the worker);
* a Resources list we cannot read, or an Id nobody can resolve, is one failed transaction and
  deletes nothing; a body nested deeper than any real payload is a 400 that touches nothing;
* a LastModifiedDate in the future cannot freeze an appointment; the reconcile overrides "stale".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import function_app
from shared.names import PUBLICATIONS_QUEUE
from tests.conftest import clean_storage, make_services, settings_env
from tests.e2e.test_dime_to_outlook import near, onboard, ours, planned, publish, reconcile, work

START = datetime(2025, 10, 2, 7, tzinfo=UTC)  # 09:00 in Brussels (CEST): the reference's sick day
END = datetime(2025, 10, 2, 15, tzinfo=UTC)


@pytest.fixture
def services(azurite, graph, dime, monkeypatch):
    built = make_services(settings_env(azurite, graph.base_url, dime.base_url, DIME_TIME_ZONE="Europe/Brussels"))
    clean_storage(built)
    monkeypatch.setattr(function_app, "services", lambda: built)
    dime.board.time_zone = "Europe/Brussels"
    return built


@pytest.fixture
def people(graph, dime, services):
    jane = graph.add_user(mail="jane@contoso.com")
    tom = graph.add_user(mail="tom@contoso.com")
    onboard(services, jane)
    onboard(services, tom)
    dime.board.add_resource("R-JANE", "jane@contoso.com", name="Jane")
    dime.board.add_resource("R-TOM", "tom@contoso.com", name="Tom")
    return {"jane": jane["id"], "tom": tom["id"]}


def failed(services) -> list:
    return [t for t in services.store.transactions_of("dime-scheduler") if t.status.value == "failed"]


@pytest.mark.parametrize("with_guid", [True, False], ids=["with-guid", "id-only"])
@pytest.mark.parametrize("shape", ["flat", "nested", "number"])
def test_a_real_connector_publication_lands_at_the_right_local_time(graph, dime, services, people, shape, with_guid):
    board = dime.board
    board.resources_shape, board.connector_guid = shape, with_guid
    guid = board.plan("Sick", START, END, ["R-JANE"], category="SICK")
    payload = board.connector_payload(board.appointments[guid])
    assert (payload["StartDate"], payload["EndDate"]) == ("2025-10-02T09:00:00", "2025-10-02T17:00:00")
    assert ("AppointmentGuid" in payload) is with_guid and "Assignments" not in payload

    assert publish(payload).status_code == 200
    dime.reset_calls()
    work(services)

    [event] = ours(graph, people["jane"])
    assert event["start"] == {"dateTime": "2025-10-02T07:00:00.0000000", "timeZone": "UTC"}
    assert event["end"]["dateTime"].startswith("2025-10-02T15:00:00")
    assert event["subject"] == "Sick" and event["categories"] == ["SICK"]
    assert ours(graph, people["tom"]) == []
    lookups = [r.path for r in dime.requests if r.path.startswith("/appointment/")]
    assert lookups == ([] if with_guid else [f"/appointment/{payload['Id']}"])
    link = services.store.get_link(people["jane"], event["id"])
    assert link.appointment_guid == guid  # the same identity as the hooks' publications


def test_the_reference_body_verbatim(graph, dime, services, people):
    """The body of the hbulens/dela README (abbreviated there: no AppointmentGuid; the Resources
    items filled in), for the appointment FakeDime knows under that Id."""
    guid = dime.board.plan("Sick", START, END, ["R-JANE"], category="SICK")
    body = {
        "Id": dime.board.appointments[guid].id,
        "AppointmentNo": "rVjMXrDY",
        "StartDate": "2025-10-02T09:00:00",
        "EndDate": "2025-10-02T17:00:00",
        "Subject": "Sick",
        "Body": " - \r\n",
        "CreatedUser": "planner@contoso.com",
        "Resources": [{"ResourceNo": "R-JANE", "Email": "jane@contoso.com", "DisplayName": "Jane"}],
        "Task": {"Description": "Sick", "Job": {"JobNo": "ABS", "Description": "Absence"}, "Category": {}},
        "Category": {"Name": "SICK", "Color": "#ff0000"},
    }
    assert publish(body).status_code == 200
    work(services)
    [event] = ours(graph, people["jane"])
    assert event["start"]["dateTime"].startswith("2025-10-02T07:00:00") and event["categories"] == ["SICK"]


@pytest.mark.parametrize(
    "resources",
    [[{"ResourceId": 7}], [{"Name": "Jane"}], [None], [{"ResourceNo": "R-JANE"}, {"ResourceId": 8}], "R-JANE"],
)
def test_an_unreadable_resource_list_deletes_nothing_and_is_recorded_once(graph, dime, services, people, resources):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    assert len(ours(graph, people["jane"])) == 1

    payload = planned(dime, guid)
    del payload["Assignments"]
    payload["Resources"] = resources
    payload["LastModifiedDate"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()  # newer than applied
    for _ in range(4):  # Dime.Scheduler delivers again whatever is not a 200: one row all the same
        assert publish(payload, "updated").status_code == 200
    assert services.queues.depth(PUBLICATIONS_QUEUE) == 0
    work(services)
    assert len(ours(graph, people["jane"])) == 1  # still there
    [row] = failed(services)
    assert row.error_code == "PUBLICATION_UNREADABLE_RESOURCES" and "Resources" in row.message
    assert row.appointment_guid == guid and json.loads(row.payload["received"])["AppointmentGuid"] == guid


def test_an_id_nobody_can_resolve_is_a_visible_failure_that_deletes_nothing(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    payload = dime.board.connector_payload(dime.board.appointments[guid])
    del payload["AppointmentGuid"]
    payload["Id"] = 99  # not an appointment of this board (another environment, or deleted)
    assert publish(payload, "updated").status_code == 200
    work(services)
    assert len(ours(graph, people["jane"])) == 1
    [row] = failed(services)
    assert row.error_code == "PUBLICATION_UNRESOLVED" and "/appointment/99" in row.message
    assert row.payload["message"]["publication"]["appointment_id"] == "99"  # what a retry needs


def test_a_transient_failure_of_the_lookup_is_retried_by_the_queue(graph, dime, services, people):
    dime.board.connector_guid = False
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(dime.board.connector_payload(dime.board.appointments[guid]))
    dime.fail_next(1, status=503, path_contains="/appointment/")
    work(services)
    assert len(ours(graph, people["jane"])) == 1 and failed(services) == []


@pytest.mark.parametrize("opener", [b"[", b"{", b'{"a":'])
def test_a_body_nested_deeper_than_any_payload_is_400_and_touches_nothing(services, opener):
    answer = publish(opener * 50_000)
    assert answer.status_code == 400 and b"nested deeper" in answer.get_body()
    assert list(services.store.transactions_of("dime-scheduler")) == []
    assert services.queues.depth(PUBLICATIONS_QUEUE) == 0


def test_a_last_modified_date_in_the_future_cannot_freeze_an_appointment(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    forged = planned(dime, guid)
    forged["Subject"], forged["LastModifiedDate"] = "Forged", "2099-01-01T00:00:00Z"
    publish(forged, "updated")
    work(services)
    genuine = planned(dime, guid)
    genuine["Subject"] = "Genuine"
    genuine["LastModifiedDate"] = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()  # after receipt
    publish(genuine, "updated")
    work(services)
    [event] = ours(graph, people["jane"])
    assert event["subject"] == "Genuine"


def test_the_reconcile_overrides_a_stale_verdict(graph, dime, services, people):
    jane = people["jane"]
    guid = dime.board.plan("Real", near(1, 8), near(1, 9), ["R-JANE"])
    ahead = planned(dime, guid)  # within the 5 minutes' tolerance: not clamped, and ahead of the board
    ahead["Subject"], ahead["LastModifiedDate"] = "Ahead", (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    publish(ahead, "updated")
    work(services)
    assert [e["subject"] for e in ours(graph, jane)] == ["Ahead"]
    publish(planned(dime, guid), "updated")  # the board's own version is older: stale for the worker
    work(services)
    assert [e["subject"] for e in ours(graph, jane)] == ["Ahead"]

    stats = reconcile(services)  # Dime.Scheduler's own state: authoritative
    assert [e["subject"] for e in ours(graph, jane)] == ["Real"] and stats.updated == 1
    publish(planned(dime, guid), "updated")  # and the board's LastModifiedDate is the one kept
    dime.board.update(guid, subject="Moved on")
    publish(planned(dime, guid), "updated")
    work(services)
    assert [e["subject"] for e in ours(graph, jane)] == ["Moved on"]


def test_an_array_with_a_bad_item_queues_the_good_one_and_records_the_body_once(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    body = [planned(dime, guid), {"AppointmentGuid": "6c1b6a2e-1111-4c3d-9e8f-00000000000b", "StartDate": "x"}]
    for _ in range(2):
        answer = publish(body, "created")
        assert answer.status_code == 200 and b"queued 1" in answer.get_body()
    work(services)
    assert len(ours(graph, people["jane"])) == 1  # the good one, once (the second delivery is a duplicate)
    [row] = failed(services)
    assert row.error_code == "PUBLICATION_INVALID" and row.message.startswith("item 1:")
