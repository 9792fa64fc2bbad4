"""Self-tests of the planning board (FakeDime.board) and of FakeGraph's tagged-event behaviour."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest

from tests.fakes import FakeDime, FakeGraph
from tests.fakes_selftest.test_fakes import Receiver

AUTH = {"Authorization": "Bearer anything"}
KEY = {"X-API-KEY": "test-api-key"}
PROP = "String {3c1f6a52-7d0e-4b9a-9f53-2f7d8e1b6a40} Name DimeSchedulerAppointment"
START = datetime(2026, 11, 24, 8, tzinfo=UTC)
END = datetime(2026, 11, 24, 9, tzinfo=UTC)


@pytest.fixture
def graph():
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def dime():
    with FakeDime() as fake:
        yield fake


def post_event(graph, uid, tx, subject="A"):
    body = {
        "subject": subject,
        "start": {"dateTime": "2026-11-24T08:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-24T09:00:00", "timeZone": "UTC"},
        "transactionId": tx,
        "singleValueExtendedProperties": [{"id": PROP, "value": "g|R1"}],
    }
    return httpx.post(f"{graph.base_url}/users/{uid}/events", json=body, headers=AUTH)


@pytest.mark.parametrize(("mode", "status"), [("existing", 201), ("conflict", 409)])
def test_duplicate_transaction_id_answers(graph, mode, status):
    graph.duplicate_create = mode
    uid = graph.add_user()["id"]
    first = post_event(graph, uid, "tx-1")
    second = post_event(graph, uid, "tx-1", subject="B")
    assert first.status_code == 201 and second.status_code == status
    assert len(graph.events(uid)) == 1 and graph.events(uid)[0]["subject"] == "A"
    if status == 201:
        assert second.json()["id"] == first.json()["id"]


def test_filter_by_extended_property_and_expand(graph):
    uid = graph.add_user()["id"]
    created = post_event(graph, uid, "tx-2").json()
    assert "singleValueExtendedProperties" not in created  # only when $expand-ed
    graph.create_event(uid, subject="personal")
    text = f"singleValueExtendedProperties/any(ep: ep/id eq '{PROP}' and ep/value eq 'g|R1')"
    found = httpx.get(f"{graph.base_url}/users/{uid}/events?$filter={quote(text)}", headers=AUTH).json()["value"]
    assert [e["id"] for e in found] == [created["id"]]
    other = text.replace("g|R1", "g|R2")
    assert httpx.get(f"{graph.base_url}/users/{uid}/events?$filter={quote(other)}", headers=AUTH).json()["value"] == []
    assert httpx.get(f"{graph.base_url}/users/{uid}/events?$filter=subject%20eq%20'x'", headers=AUTH).status_code == 400


def test_board_publishes_to_hooks_with_duplicates_and_retries_failures(dime):
    receiver = Receiver()
    try:
        board = dime.board
        board.duplicates = 2
        board.retries = 0  # one attempt per delivery: the retry job's part alone
        board.add_resource("R1", "jane@contoso.com")
        for hook_type, change in (("AppointmentCreated", "Create"), ("AppointmentDeleted", "Delete")):
            answer = httpx.post(
                f"{dime.base_url}/webhooks/{hook_type}",
                json={"sourceApp": "BC", "notificationURL": receiver.url("/hook/" + change), "resource": "Appointments",
                      "changeType": [change]},
                headers=KEY,
            )  # fmt: skip
            assert answer.status_code == 201 and answer.headers["Location"].startswith(f"/webhooks/{hook_type}/")
            assert answer.json()["id"] == answer.headers["Location"].rsplit("/", 1)[-1]
        guid = board.plan("Visit", START, END, ["R1"])
        board.update(guid, subject="Moved")  # no Updated hook: nothing sent
        board.delete(guid)
        board.fail_rate = 1.0
        assert board.flush() == [0, 0, 0, 0]
        board.fail_rate = 0.0
        # The receiver answers 202: only 200 counts as delivered, so all four wait for a retry again.
        assert board.retry_deliveries() == [202, 202, 202, 202]
        assert len(board.failed) == 4 and board.delivered == []
        payloads = [p.payload for p in board.failed]
        assert [p["AppointmentGuid"] for p in payloads] == [guid] * 4
        resource = payloads[0]["Assignments"][0]["Resource"]
        assert (resource["ResourceNo"], resource["Email"]) == ("R1", "jane@contoso.com")
        assert payloads[-1]["LastModifiedDate"] > payloads[0]["LastModifiedDate"]
        assert len(receiver.posts) == 4
    finally:
        receiver.close()


def test_board_resource_listing_hooks_and_appointments(dime):
    board = dime.board
    board.add_resource("R1", "jane@contoso.com")
    board.add_resource("R2", None, exchange_enabled=False)
    resources = httpx.get(f"{dime.base_url}/resource", headers=KEY).json()
    assert [(r["resourceNo"], r["exchangeIntegrationEnabled"]) for r in resources] == [("R1", True), ("R2", False)]
    board.plan("Visit", START, END, ["R1"])
    board.plan("Other", START, END, ["R2"])
    url = f"{dime.base_url}/appointment?startDate=2026-11-24T00:00:00Z&endDate=2026-11-25T00:00:00Z&resources=R1"
    assert [a["Subject"] for a in httpx.get(url, headers=KEY).json()] == ["Visit"]
    board.listing_shape = "flat"
    assert [a["subject"] for a in httpx.get(url, headers=KEY).json()] == ["Visit"]
    board.listing_shape = "envelope"
    assert [a["Subject"] for a in httpx.get(url, headers=KEY).json()["value"]] == ["Visit"]
    assert httpx.get(f"{dime.base_url}/appointment", headers=KEY).status_code == 400
    assert httpx.delete(f"{dime.base_url}/webhooks/AppointmentCreated/nope", headers=KEY).status_code == 404
    board.max_hooks = 0
    body = {"sourceApp": "BC", "notificationURL": "http://x", "resource": "Appointments", "changeType": ["Create"]}
    assert httpx.post(f"{dime.base_url}/webhooks/AppointmentCreated", json=body, headers=KEY).status_code == 429


@pytest.mark.parametrize("status", [404, 200])
def test_patch_of_an_event_in_deleted_items(status):
    """deleted_patch_status: 404, or 200 with the edit applied in Deleted Items (the event stays
    out of the calendar and out of calendarView)."""
    with FakeGraph(deleted_patch_status=status) as graph:
        uid = graph.add_user()["id"]
        event = post_event(graph, uid, "tx-p").json()
        path = f"{graph.base_url}/users/{uid}/events/{quote(event['id'], safe='')}"
        assert httpx.delete(path, headers=AUTH).status_code == 204
        answer = httpx.patch(path, json={"subject": "edited"}, headers=AUTH)
        assert answer.status_code == status
        if status == 200:
            assert answer.json()["subject"] == "edited"
        view = httpx.get(
            f"{graph.base_url}/users/{uid}/calendar/calendarView",
            params={"startDateTime": "2026-11-23T00:00:00Z", "endDateTime": "2026-11-26T00:00:00Z"},
            headers=AUTH,
        )
        assert graph.events(uid) == [] and view.json()["value"] == []


@pytest.mark.parametrize(("status", "code"), [(404, "ErrorItemNotFound"), (403, "ErrorCannotDeleteObject")])
def test_a_repeated_delete(status, code):
    with FakeGraph(deleted_delete_status=status) as graph:
        uid = graph.add_user()["id"]
        event = post_event(graph, uid, "tx-d").json()
        path = f"{graph.base_url}/users/{uid}/events/{quote(event['id'], safe='')}"
        assert httpx.delete(path, headers=AUTH).status_code == 204
        again = httpx.delete(path, headers=AUTH)
        assert again.status_code == status and again.json()["error"]["code"] == code


def test_calendar_view_expands_the_tag_on_the_events_that_carry_it(graph):
    uid = graph.add_user()["id"]
    ours = post_event(graph, uid, "tx-v").json()
    theirs = graph.create_event(uid, subject="personal", start="2026-11-24T10:00:00", end="2026-11-24T11:00:00")
    view = httpx.get(
        f"{graph.base_url}/users/{uid}/calendar/calendarView",
        params={
            "startDateTime": "2026-11-23T00:00:00Z",
            "endDateTime": "2026-11-26T00:00:00Z",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{PROP}')",
        },
        headers=AUTH,
    ).json()["value"]
    by_id = {item["id"]: item.get("singleValueExtendedProperties") for item in view}
    assert by_id[ours["id"]] == [{"id": PROP, "value": "g|R1"}] and by_id[theirs["id"]] is None
