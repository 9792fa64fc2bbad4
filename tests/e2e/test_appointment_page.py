"""Names, subjects and times stored at write time, and one appointment's page (issue 19).

Through the functions: an Outlook change and a planner publication write what the console shows
(the board's subject, masked for a private event; the event's subject as placed), and the
management API answers lists and one appointment's page from storage alone.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from azure.core.pipeline.transport import RequestsTransport

import function_app
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.consent import Consent
from shared.core.ids import appointment_guid
from shared.core.transaction_query import public_id
from shared.core.transactions import Status
from tests.conftest import TENANT_ID, track
from tests.e2e.test_dime_to_outlook import END, START, people, planned, publish, work  # noqa: F401
from tests.e2e.test_realtime import notify
from tests.e2e.test_transactions_admin import get, list_all, post, tx


@pytest.fixture
def table_requests(monkeypatch):
    """Every request the storage SDK sends (Azurite's tables), counted."""
    sent: list[str] = []
    original = RequestsTransport.send

    def counting(self, request, **kwargs):
        sent.append(f"{request.method} {request.url.split('?')[0]}")
        return original(self, request, **kwargs)

    monkeypatch.setattr(RequestsTransport, "send", counting)
    return sent


@pytest.fixture
def jane(graph, services):
    services.settings = replace(services.settings, default_consent=Consent.parse(True, "busy", "normal,private"))
    user = graph.add_user(mail="jane@contoso.com", upn="jane.doe@contoso.onmicrosoft.com", display_name="Jane Doe")
    track(services, user)
    return user


def test_a_private_event_is_stored_and_shown_only_masked_with_the_persons_name(graph, dime, services, jane):
    event = graph.create_event(jane["id"], subject="Doctor <b>Smith</b>", body="details", sensitivity="private")
    notify(graph, services, jane, event, "created")
    guid = appointment_guid(TENANT_ID, jane["id"], event["id"])
    assert dime.appointments[guid]["Subject"] == "Private appointment"

    [row] = list_all({"mailbox": jane["id"]})
    assert (row["subject"], row["start"]) == ("Private appointment", "2026-11-23T09:00:00Z")
    assert (row["personName"], row["upn"]) == ("Jane Doe", "jane.doe@contoso.onmicrosoft.com")
    status, links = get(function_app.manage_links, {"mailbox": jane["id"]})
    assert status == 200 and links["items"][0]["subject"] == "Private appointment"
    assert links["items"][0]["personName"] == "Jane Doe"
    status, page = get(function_app.manage_appointment, {"mailbox": jane["id"]}, {"guid": guid})
    assert status == 200 and page["links"][0]["subject"] == "Private appointment"
    assert [t["subject"] for t in page["transactions"]] == ["Private appointment"]
    # The real subject is nowhere in storage: not in a row, not in a link.
    stored = json.dumps([dict(e) for e in services.store.table("transactions").query_entities("")], default=str)
    stored += json.dumps([dict(e) for e in services.store.table("links").query_entities("")], default=str)
    assert "Doctor" not in stored and "Smith" not in stored


def test_a_normal_event_keeps_its_subject_and_a_delete_keeps_it_too(graph, dime, services, jane):
    event = graph.create_event(
        jane["id"], subject='<img src=x onerror="alert(1)">', start="2026-11-24T14:30:00", end="2026-11-24T15:00:00"
    )
    notify(graph, services, jane, event, "created")
    graph.delete_event(jane["id"], event["id"])
    notify(graph, services, jane, event, "deleted")
    rows = list_all({"mailbox": jane["id"]})
    assert [(r["operation"], r["subject"], r["start"]) for r in rows] == [
        ("upsert", '<img src=x onerror="alert(1)">', "2026-11-24T14:30:00Z"),
        ("delete", '<img src=x onerror="alert(1)">', "2026-11-24T14:30:00Z"),
    ]


def test_a_planned_appointments_page_shows_both_sides_and_its_timeline(graph, dime, services, people):  # noqa: F811
    guid = dime.board.plan("Install heat pump", START, END, ["R-JANE"])
    assert publish(planned(dime, guid), "created").status_code == 200
    work(services)
    jane_id = people["jane"]["id"]
    [row] = list_all({"mailbox": jane_id})
    assert (row["subject"], row["start"], row["direction"]) == (
        "Install heat pump",
        "2026-11-24T08:00:00Z",
        "dime-to-outlook",
    )

    status, page = get(function_app.manage_appointment, {}, {"guid": guid})
    assert status == 200 and page["scanned"] is False  # the placed event names the mailbox
    assert page["board"]["subject"] == "Install heat pump" and page["board"]["start"] == "2026-11-24T08:00:00Z"
    [placed] = page["placed"]
    assert placed["mailboxId"] == jane_id and placed["subject"] == "Install heat pump" and placed["eventId"]
    [outlook] = page["links"]
    assert outlook["eventId"] == placed["eventId"] and outlook["origin"] == "dime"
    assert outlook["subject"] == "Install heat pump"
    assert [t["operation"] for t in page["transactions"]] == ["create"]
    assert page["transactions"][0]["payload"] is not None

    status, same = get(function_app.manage_event, {"mailbox": jane_id, "eventId": placed["eventId"]})
    assert status == 200 and same["appointmentGuid"] == guid and same["eventId"] == placed["eventId"]


def test_the_timeline_is_newest_first_with_failures_retryable_and_old_rows_readable(services, jane, table_requests):
    guid = "6f1c2b9e-0000-4000-8000-00000000abcd"
    old = tx(jane["id"], datetime(2026, 11, 1, 8, tzinfo=UTC), Status.SUCCEEDED, appointment_guid=guid)
    failed = tx(jane["id"], datetime(2026, 11, 1, 9, tzinfo=UTC), appointment_guid=guid)
    failed.payload = {"queue": "graph-notifications", "message": {"x": 1}}
    other = tx(jane["id"], datetime(2026, 11, 1, 10, tzinfo=UTC), appointment_guid="someone-else")
    transaction_store(services).add_many([old, failed, other])

    table_requests.clear()
    status, page = get(function_app.manage_appointment, {"mailbox": jane["id"]}, {"guid": guid})
    assert status == 200
    # One page drawn: eventlinks partition + origin mark, links and transactions of the mailbox,
    # the dime-scheduler partition, the resources: six table requests, whatever the row count.
    assert len(table_requests) == 6, table_requests
    ids = [t["id"] for t in page["transactions"]]
    assert ids == [public_id(jane["id"], failed.id), public_id(jane["id"], old.id)]  # newest first
    first = page["transactions"][0]
    assert first["status"] == "failed" and first["errorCode"] == "DIME_REJECTED" and first["payload"]["message"]
    assert first["subject"] is None and first["start"] is None  # written before: null, not an error
    assert first["personName"] == "Jane Doe"  # from the resources row, one query per page

    status, _ = post(function_app.manage_transactions_archive, {"ids": [first["id"]]})
    assert status == 200
    status, page = get(function_app.manage_appointment, {"mailbox": jane["id"]}, {"guid": guid})
    assert page["transactions"][0]["status"] == "archived"


@pytest.mark.parametrize(
    ("function", "params", "route"),
    [
        (function_app.manage_appointment, {}, {"guid": "~failed"}),
        (function_app.manage_appointment, {"verbose": "1"}, {"guid": "abc"}),
        (function_app.manage_appointment, {"mailbox": "a/b"}, {"guid": "abc"}),
        (function_app.manage_event, {"mailbox": "aaaaaaaa-0000-4000-8000-000000000001"}, {}),
        (function_app.manage_event, {"eventId": "AAMk"}, {}),
    ],
)
def test_malformed_requests_are_400(services, function, params, route):
    status, body = get(function, params, route)
    assert status == 400 and body["error"]


def test_an_unknown_appointment_is_an_empty_page_by_a_bounded_scan(services):
    status, page = get(function_app.manage_appointment, {}, {"guid": "6f1c2b9e-0000-4000-8000-000000000000"})
    assert status == 200 and page["scanned"] is True and page["transactions"] == [] and page["board"] is None
