"""Self-tests of the fakes: they must behave like the services their public documentation describes (each fake cites
it),
or every test built on them proves nothing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.fakes import FakeDime, FakeGraph

AUTH = {"Authorization": "Bearer anything"}
UPSERT = "mboc_upsertExchangeAppointment"
DELETE = "mboc_deleteExchangeAppointment"


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
class Receiver:
    """A tiny webhook receiver: answers Graph's validation handshake (correctly or not, by
    ``mode``) and records every POST."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.posts: list[tuple[str, dict[str, list[str]], bytes]] = []
        self.tokens: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = parse_qs(urlsplit(self.path).query)
                outer.posts.append((self.path, query, body))
                if "validationToken" in query:
                    token = query["validationToken"][0]
                    outer.tokens.append(token)
                    text, ctype = token, "text/plain; charset=utf-8"
                    if outer.mode == "html":
                        text, ctype = token, "text/html"
                    elif outer.mode == "raw":  # echoes the still-encoded token
                        text = urlsplit(self.path).query.split("validationToken=")[1].split("&")[0]
                    elif outer.mode == "status":
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    data = text.encode("utf-8")
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/api/notifications", query: str = "code=func-key") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}" + (f"?{query}" if query else "")

    def notifications(self) -> list[dict[str, Any]]:
        out = []
        for _, query, body in self.posts:
            if "validationToken" not in query and body:
                out.extend(json.loads(body)["value"])
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph(seed=7) as g:
        yield g


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def dime() -> Iterator[FakeDime]:
    with FakeDime() as d:
        yield d


def ev_url(graph: FakeGraph, uid: str, eid: str | None = None) -> str:
    base = f"{graph.base_url}/users/{quote(uid, safe='@')}/events"
    return base if eid is None else f"{base}/{quote(eid, safe='')}"


def expiry(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subscribe(graph: FakeGraph, uid: str, url: str, **extra: Any) -> httpx.Response:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": f"/users/{uid}/events",
        "expirationDateTime": expiry(4000),
        "clientState": "secret-state",
        **extra,
    }
    return httpx.post(
        f"{graph.base_url}/subscriptions", json=body, headers={**AUTH, "Prefer": 'IdType="ImmutableId"'}, timeout=15
    )


def upsert_call(guid: str = "11111111-1111-1111-1111-111111111111", **overrides: str) -> dict[str, Any]:
    params = {
        "AppointmentId": "0",
        "AppointmentGuid": guid,
        "ExchangeId": "AAkALg-x_y=",
        "ICalUId": "040000008200E0",
        "Start": "2026-11-23 09:00:00Z",
        "End": "2026-11-23 10:00:00Z",
        "Subject": "Visit",
        "Body": "",
        "Importance": "0",
        "ResourceEmail": "jane@contoso.com",
        "ShowAs": "3",
        "Sensitivity": "1",
        "Categories": "Red category;Blue category",
        "CreatedByExchange": "True",
        **overrides,
    }
    return {"StoredProcedureName": UPSERT, "ParameterNames": list(params), "ParameterValues": list(params.values())}


def inner(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    env = response.json()
    return env["statusCode"], json.loads(env["content"])


# ------------------------------------------------------------------------------------------
# Graph: events
# ------------------------------------------------------------------------------------------
def test_event_ids_look_immutable_and_change_key_moves_on_every_update(graph: FakeGraph) -> None:
    uid = graph.add_user(mail="jane@contoso.com")["id"]
    ev = graph.create_event(uid, subject="A")
    eid = ev["id"]
    assert len(eid) > 60 and "-" in eid and "_" in eid and eid.endswith("=")
    assert ev["@odata.etag"] == f'W/"{ev["changeKey"]}"'
    updated = graph.update_event(uid, eid, subject="B")
    assert updated["changeKey"] != ev["changeKey"]
    assert updated["subject"] == "B"
    r = httpx.patch(ev_url(graph, uid, eid), json={"subject": "C"}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["changeKey"] not in (ev["changeKey"], updated["changeKey"])
    assert graph.get_event(uid, eid)["subject"] == "C"  # type: ignore[index]


def test_get_event_by_upn_with_utc_preference_and_own_zone_otherwise(graph: FakeGraph) -> None:
    graph.add_user(mail="jane@contoso.com")
    ev = graph.create_event(
        "jane@contoso.com", start="2026-07-01T09:00:00", end="2026-07-01T10:00:00", time_zone="Europe/Brussels"
    )
    r = httpx.get(ev_url(graph, "JANE@contoso.com", ev["id"]), headers={**AUTH, "Prefer": 'outlook.timezone="UTC"'})
    assert r.status_code == 200
    assert r.json()["start"] == {"dateTime": "2026-07-01T07:00:00.0000000", "timeZone": "UTC"}
    r = httpx.get(ev_url(graph, "jane@contoso.com", ev["id"]), headers=AUTH)
    assert r.json()["start"]["timeZone"] == "Europe/Brussels"
    assert r.json()["start"]["dateTime"] == "2026-07-01T09:00:00.0000000"


def test_404_bodies_are_graph_shaped(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    r = httpx.get(ev_url(graph, uid, "AAkALgnope="), headers=AUTH)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "ErrorItemNotFound"
    assert isinstance(r.json()["error"]["message"], str)
    r = httpx.get(f"{graph.base_url}/users/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"


def test_bearer_token_required(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    r = httpx.get(f"{graph.base_url}/users/{uid}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert httpx.get(f"{graph.base_url}/users/{uid}", headers=AUTH).status_code == 200


def test_transaction_id_dedupes_create(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    body = {
        "subject": "From Dime",
        "start": {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-23T10:00:00", "timeZone": "UTC"},
        "transactionId": "tx-42",
        "singleValueExtendedProperties": [
            {"id": "String {6f2a1a4e-0000-4000-8000-000000000001} Name AppointmentGuid", "value": "g-1"}
        ],
    }
    first = httpx.post(ev_url(graph, uid), json=body, headers=AUTH)
    second = httpx.post(ev_url(graph, uid), json=body, headers=AUTH)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(graph.events(uid)) == 1
    prop_id = body["singleValueExtendedProperties"][0]["id"]  # type: ignore[index]
    plain = httpx.get(ev_url(graph, uid, first.json()["id"]), headers=AUTH).json()
    assert "singleValueExtendedProperties" not in plain
    expanded = httpx.get(
        ev_url(graph, uid, first.json()["id"]),
        params={"$expand": f"singleValueExtendedProperties($filter=id eq '{prop_id}')"},
        headers=AUTH,
    ).json()
    assert expanded["singleValueExtendedProperties"] == [{"id": prop_id, "value": "g-1"}]


# ------------------------------------------------------------------------------------------
# Graph: delta
# ------------------------------------------------------------------------------------------
WINDOW = {"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}


def run_round(url: str, params: dict[str, str] | None, page_size: int) -> tuple[list[dict[str, Any]], int, str]:
    headers = {**AUTH, "Prefer": f'odata.maxpagesize={page_size}, outlook.timezone="UTC"'}
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        r = httpx.get(url, params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert len(page["value"]) <= page_size
        items.extend(page["value"])
        params = None
        if "@odata.deltaLink" in page:
            assert "@odata.nextLink" not in page
            return items, pages, page["@odata.deltaLink"]
        url = page["@odata.nextLink"]
        assert url.startswith("http://127.0.0.1:") and "$skiptoken=" in url


def test_delta_rounds_paginate_then_report_only_changes_and_removals(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    ids = [
        graph.create_event(uid, subject=f"e{i}", start=f"2026-11-{10 + i}T09:00:00", end=f"2026-11-{10 + i}T10:00:00")[
            "id"
        ]
        for i in range(5)
    ]
    graph.create_event(uid, subject="outside", start="2027-03-01T09:00:00", end="2027-03-01T10:00:00")
    items, pages, delta_link = run_round(f"{graph.base_url}/users/{uid}/calendarView/delta", WINDOW, page_size=2)
    assert pages == 3
    assert sorted(i["id"] for i in items) == sorted(ids)
    assert all("@removed" not in i for i in items)
    assert "$deltatoken=" in delta_link

    graph.update_event(uid, ids[0], subject="changed")
    graph.delete_event(uid, ids[1])
    graph.update_event(uid, ids[2], start="2027-01-05T09:00:00", end="2027-01-05T10:00:00")  # moves out
    new_id = graph.create_event(uid, subject="new", start="2026-11-20T09:00:00", end="2026-11-20T10:00:00")["id"]

    items, _, delta_link2 = run_round(delta_link, None, page_size=10)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {ids[0], ids[1], ids[2], new_id}
    assert by_id[ids[0]]["subject"] == "changed" and "changeKey" in by_id[ids[0]]
    assert by_id[ids[1]]["@removed"] == {"reason": "deleted"}
    assert by_id[ids[2]]["@removed"] == {"reason": "deleted"}
    assert by_id[new_id]["subject"] == "new"

    items, _, _ = run_round(delta_link2, None, page_size=10)
    assert items == []


def test_delta_rejects_select_and_filter(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    r = httpx.get(
        f"{graph.base_url}/users/{uid}/calendarView/delta", params={**WINDOW, "$select": "subject"}, headers=AUTH
    )
    assert r.status_code == 400 and "error" in r.json()


def test_expired_delta_token_answers_410_or_resync_required(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    graph.create_event(uid)
    _, _, delta_link = run_round(f"{graph.base_url}/users/{uid}/calendarView/delta", WINDOW, page_size=5)
    assert graph.expire_delta_tokens(uid) >= 1
    r = httpx.get(delta_link, headers=AUTH)
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "syncStateNotFound"
    assert "calendarView/delta" in r.headers["Location"]

    _, _, delta_link = run_round(f"{graph.base_url}/users/{uid}/calendarView/delta", WINDOW, page_size=5)
    graph.expire_delta_tokens(resync_required=True)
    r = httpx.get(delta_link, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "resyncRequired"


# ------------------------------------------------------------------------------------------
# Graph: $batch
# ------------------------------------------------------------------------------------------
def test_batch_member_can_be_throttled_inside_a_200_envelope(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    e1, e2 = graph.create_event(uid)["id"], graph.create_event(uid)["id"]
    graph.fail_next(count=1, status=429, retry_after=2, path_contains=e2)
    requests = [
        {
            "id": "1",
            "method": "GET",
            "url": f"/users/{uid}/events/{quote(e1, safe='')}",
            "headers": {"Prefer": 'outlook.timezone="UTC"'},
        },
        {"id": "2", "method": "GET", "url": f"/users/{uid}/events/{quote(e2, safe='')}"},
        {"id": "3", "method": "GET", "url": f"/users/{uid}/events/AAkALgmissing="},
    ]
    r = httpx.post(f"{graph.base_url}/$batch", json={"requests": requests}, headers=AUTH)
    assert r.status_code == 200
    responses = {m["id"]: m for m in r.json()["responses"]}
    assert responses["1"]["status"] == 200 and responses["1"]["body"]["id"] == e1
    assert responses["2"]["status"] == 429 and responses["2"]["headers"]["Retry-After"] == "2"
    assert responses["2"]["body"]["error"]["code"] == "TooManyRequests"
    assert responses["3"]["status"] == 404
    assert len(graph.batch_members) == 3
    assert sum(1 for rec in graph.requests if rec.path.endswith("$batch")) == 1

    too_many = [{"id": str(i), "method": "GET", "url": f"/users/{uid}/events/{quote(e1, safe='')}"} for i in range(21)]
    assert httpx.post(f"{graph.base_url}/$batch", json={"requests": too_many}, headers=AUTH).status_code == 400


def test_a_mailbox_over_four_concurrent_requests_is_throttled_across_clients(graph: FakeGraph) -> None:
    """Graph's Outlook limit, 4 concurrent requests per app per mailbox
    (https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits), counted
    over every client: five slow GETs from five threads, then a $batch while four are in flight."""
    uid, other = graph.add_user()["id"], graph.add_user()["id"]
    event = graph.create_event(uid)["id"]
    graph.delay_next(0.5, count=4, path_contains=event)
    url = f"{graph.base_url}/users/{uid}/events/{quote(event, safe='')}"
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(httpx.get(url, headers=AUTH))) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while graph.max_in_flight[uid.lower()] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    fifth = httpx.get(url, headers=AUTH)  # a fifth client while four are served
    members = [
        {"id": "1", "method": "GET", "url": f"/users/{uid}/events/{quote(event, safe='')}"},
        {"id": "2", "method": "GET", "url": f"/users/{other}/calendar"},
    ]
    batch = httpx.post(f"{graph.base_url}/$batch", json={"requests": members}, headers=AUTH).json()["responses"]
    for thread in threads:
        thread.join()

    assert fifth.status_code == 429 and fifth.json()["error"]["code"] == "MailboxConcurrency"
    assert fifth.headers["Retry-After"] == "1"
    by_id = {m["id"]: m for m in batch}
    assert by_id["1"]["status"] == 429 and by_id["1"]["body"]["error"]["code"] == "MailboxConcurrency"
    assert by_id["2"]["status"] != 429  # another mailbox is not throttled by this one's load
    assert sorted(a.status_code for a in answers) == [200] * 4
    assert graph.max_in_flight[uid.lower()] == 4 and graph.concurrency_refusals == 2
    assert httpx.get(url, headers=AUTH).status_code == 200  # the slots are free again


# ------------------------------------------------------------------------------------------
# Graph: subscriptions and notifications
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["html", "raw", "status"])
def test_subscription_fails_validation_when_receiver_echoes_wrongly(graph: FakeGraph, mode: str) -> None:
    bad = Receiver(mode)
    try:
        uid = graph.add_user()["id"]
        r = subscribe(graph, uid, bad.url())
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "ValidationError"
        assert graph.subscriptions() == []
        assert len(bad.tokens) == 1
    finally:
        bad.close()


def test_subscription_handshake_create_conflict_renew_delete(graph: FakeGraph, receiver: Receiver) -> None:
    uid = graph.add_user()["id"]
    r = subscribe(graph, uid, receiver.url(), lifecycleNotificationUrl=receiver.url("/api/lifecycle"))
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["clientState"] == "secret-state" and sub["resource"] == f"/users/{uid}/events"
    assert graph.subscription_used_immutable_ids(sub["id"]) is True
    # both URLs validated, existing query string preserved, token decoded by the receiver
    assert len(receiver.tokens) == 2
    token = receiver.tokens[0]
    assert all(c in token for c in (" ", "+", "/", "<")) and any(ord(c) > 127 for c in token)
    assert all(query["code"] == ["func-key"] for _, query, _ in receiver.posts)

    # No 409 for a duplicate (Microsoft Learn, subscription-post-subscriptions).
    assert subscribe(graph, uid, receiver.url()).status_code == 201
    too_far = subscribe(graph, f"{uid}", receiver.url(), changeType="created")
    assert too_far.status_code == 201
    r = httpx.patch(
        f"{graph.base_url}/subscriptions/{sub['id']}", json={"expirationDateTime": expiry(20000)}, headers=AUTH
    )
    assert r.status_code == 400 and "10070 minutes" in r.json()["error"]["message"]
    r = httpx.patch(f"{graph.base_url}/subscriptions/{sub['id']}", json={"expirationDateTime": expiry(5)}, headers=AUTH)
    assert r.status_code == 200
    new_expiry = datetime.fromisoformat(r.json()["expirationDateTime"].replace("0Z", "+00:00"))
    assert new_expiry >= datetime.now(UTC) + timedelta(minutes=44)
    assert httpx.post(f"{graph.base_url}/subscriptions/{sub['id']}/reauthorize", headers=AUTH).status_code == 204
    assert httpx.delete(f"{graph.base_url}/subscriptions/{sub['id']}", headers=AUTH).status_code == 204
    assert httpx.delete(f"{graph.base_url}/subscriptions/{sub['id']}", headers=AUTH).status_code == 404
    assert (
        httpx.patch(
            f"{graph.base_url}/subscriptions/{sub['id']}", json={"expirationDateTime": expiry(60)}, headers=AUTH
        ).status_code
        == 404
    )


def test_auto_notifications_duplicates_envelope_and_lifecycle(receiver: Receiver) -> None:
    with FakeGraph(seed=3, auto_notify=True, notify_duplicates=3, notify_batch_size=2) as graph:
        uid = graph.add_user()["id"]
        sub = subscribe(graph, uid, receiver.url(), lifecycleNotificationUrl=receiver.url("/api/lifecycle")).json()
        ev = graph.create_event(uid)
        r = httpx.patch(ev_url(graph, uid, ev["id"]), json={"subject": "via REST"}, headers=AUTH)
        graph.delete_event(uid, ev["id"])
        statuses = graph.flush_notifications()
        assert statuses and all(s == 202 for s in statuses)
        assert len(statuses) == 5  # 9 notifications in POSTs of at most 2
        notes = receiver.notifications()
        assert [n["changeType"] for n in notes] == ["created"] * 3 + ["updated"] * 3 + ["deleted"] * 3
        updated = notes[3]
        assert updated["subscriptionId"] == sub["id"] and updated["clientState"] == "secret-state"
        assert updated["tenantId"] == graph.tenant_id
        assert updated["resource"] == f"Users/{uid}/Events/{ev['id']}"
        assert updated["resourceData"]["id"] == ev["id"]
        assert updated["resourceData"]["@odata.etag"] == f'W/"{r.json()["changeKey"]}"'
        assert "@odata.etag" not in notes[-1]["resourceData"]
        assert graph.flush_notifications() == []

        assert graph.send_lifecycle(sub["id"], "missed") == 202
        path, _, body = receiver.posts[-1]
        life = json.loads(body)["value"][0]
        assert path.startswith("/api/lifecycle") and life["lifecycleEvent"] == "missed"
        assert "resourceData" not in life and "resource" not in life and life["clientState"] == "secret-state"


def test_explicit_notify_reaches_only_matching_subscriptions(graph: FakeGraph, receiver: Receiver) -> None:
    jane, john = graph.add_user()["id"], graph.add_user()["id"]
    assert subscribe(graph, jane, receiver.url()).status_code == 201
    eid = graph.create_event(jane)["id"]
    assert graph.notify(jane, eid, "updated") == [202]
    assert graph.notify(john, eid, "updated") == []
    assert len(receiver.notifications()) == 1


def test_drop_reorder_and_background_delivery(receiver: Receiver) -> None:
    with FakeGraph(seed=1, auto_notify=True, notify_drop_rate=1.0) as graph:
        uid = graph.add_user()["id"]
        assert subscribe(graph, uid, receiver.url()).status_code == 201
        graph.create_event(uid)
        assert graph.pending_notifications() == []
    with FakeGraph(seed=1, auto_notify=True, notify_duplicates=1, notify_reorder=True) as graph:
        uid = graph.add_user()["id"]
        assert subscribe(graph, uid, receiver.url()).status_code == 201
        ids = [graph.create_event(uid)["id"] for _ in range(8)]
        assert [n["resourceData"]["id"] for n in graph.pending_notifications()] == ids
        graph.flush_notifications()
        delivered = [n["resourceData"]["id"] for n in receiver.notifications()]
        assert sorted(delivered) == sorted(ids) and delivered != ids
    with FakeGraph(auto_notify=True, notify_duplicates=1, notify_background=True) as graph:
        uid = graph.add_user()["id"]
        assert subscribe(graph, uid, receiver.url()).status_code == 201
        before = len(receiver.notifications())
        graph.create_event(uid)
        deadline = time.monotonic() + 5
        while len(receiver.notifications()) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.notifications()) == before + 1


def test_delay_and_random_faults(graph: FakeGraph) -> None:
    uid = graph.add_user()["id"]
    graph.delay_next(0.5, path_contains="/users/")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{graph.base_url}/users/{uid}", headers=AUTH, timeout=0.1)
    graph.fault_rate(1.0, statuses=(503,), seed=4)
    r = httpx.get(f"{graph.base_url}/users/{uid}", headers=AUTH)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "ServiceUnavailable"
    graph.fault_rate(0.0)
    assert httpx.get(f"{graph.base_url}/users/{uid}", headers=AUTH).status_code == 200


# ------------------------------------------------------------------------------------------
# Graph through msgraph-sdk, for real
# ------------------------------------------------------------------------------------------
def test_msgraph_sdk_reaches_the_fake_over_http(graph: FakeGraph) -> None:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
    from msgraph_core import GraphClientFactory

    from tests.fakes.credential import StaticTokenCredential

    uid = graph.add_user(mail="jane@contoso.com")["id"]
    weird_id = "AAkALgAAAAAAHYQDEapmEc2byACqAC/EWg0A+oHIVu4ng_dEylVHhaWMkTGg-AAA="
    ev = graph.create_event(uid, subject="Encoded", id=weird_id)

    async def scenario() -> tuple[Any, ODataError]:
        credential = StaticTokenCredential()
        auth = AzureIdentityAuthenticationProvider(
            credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
        )
        async with httpx.AsyncClient() as raw:
            http = GraphClientFactory.create_with_default_middleware(client=raw)
            adapter = GraphRequestAdapter(auth, http)
            adapter.base_url = graph.base_url
            client = GraphServiceClient(request_adapter=adapter)
            got = await client.users.by_user_id(uid).events.by_event_id(weird_id).get()
            with pytest.raises(ODataError) as info:
                await client.users.by_user_id(uid).events.by_event_id("AAkALgmissing=").get()
            # delta the way the app must do it: the SDK calls ".../delta()", then follow links verbatim
            query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time="2026-11-01T00:00:00Z", end_date_time="2026-12-01T00:00:00Z"
            )
            config = RequestConfiguration(query_parameters=query)
            config.headers.add("Prefer", 'outlook.timezone="UTC"')
            config.headers.add("Prefer", "odata.maxpagesize=1")
            delta = client.users.by_user_id(uid).calendar_view.delta
            page = await delta.get(request_configuration=config)
            seen = [e.id for e in page.value or []]
            while page.odata_next_link:
                page = await delta.with_url(page.odata_next_link).get(request_configuration=config)
                seen += [e.id for e in page.value or []]
            assert seen == [weird_id, other_id] and page.odata_delta_link
            graph.delete_event(uid, other_id)
            page = await delta.with_url(page.odata_delta_link).get(request_configuration=config)
            removed = [(e.id, e.additional_data.get("@removed")) for e in page.value or []]
            assert removed == [(other_id, {"reason": "deleted"})]
            return got, info.value

    other_id = graph.create_event(uid, subject="Other")["id"]
    got, err = asyncio.run(scenario())
    assert got is not None
    assert got.subject == "Encoded" and got.change_key == ev["changeKey"] and got.id == weird_id
    assert err.response_status_code == 404
    assert err.error is not None and err.error.code == "ErrorItemNotFound"
    sent = [r for r in graph.requests if r.path.endswith(weird_id)]
    assert sent and sent[0].headers["authorization"] == "Bearer fake-token"
    assert "%2F" in sent[0].raw_target and "%2B" in sent[0].raw_target and sent[0].raw_target.endswith("%3D")


# ------------------------------------------------------------------------------------------
# Dime.Scheduler
# ------------------------------------------------------------------------------------------
def post_import(dime: FakeDime, body: Any, key: str = "test-api-key") -> httpx.Response:
    return httpx.post(f"{dime.base_url}/import", json=body, headers={"X-API-KEY": key})


def test_dime_api_key_is_checked(dime: FakeDime) -> None:
    assert post_import(dime, [upsert_call()], key="wrong").status_code == 401
    assert httpx.post(f"{dime.base_url}/import", json=[upsert_call()]).status_code == 401
    assert dime.appointments == {}


def test_dime_upsert_success_envelope_and_idempotent_delete(dime: FakeDime) -> None:
    r = post_import(dime, [upsert_call("g-1"), upsert_call("g-2", Subject="Second")])
    assert r.status_code == 200
    env = r.json()
    assert env["contentType"] == "application/json" and isinstance(env["content"], str)
    status, content = inner(r)
    assert status == 200 and content["Success"] is True
    assert [a["Guid"] for a in content["Appointments"]] == ["g-1", "g-2"]
    assert all(isinstance(a["Id"], int) for a in content["Appointments"])
    assert dime.appointments["g-2"]["Subject"] == "Second"
    assert post_import(dime, upsert_call("g-2", Subject="Third")).status_code == 200  # single object
    assert dime.appointments["g-2"]["Subject"] == "Third"
    delete = dict(upsert_call("g-1"), StoredProcedureName=DELETE)
    assert inner(post_import(dime, [delete]))[0] == 200
    assert inner(post_import(dime, [delete]))[0] == 200  # unknown guid: still fine
    assert set(dime.appointments) == {"g-2"}
    assert dime.writes == 5 and len(dime.calls) == 5


@pytest.mark.parametrize(
    "overrides",
    [
        {"ResourceEmail": "nobody@contoso.com"},
        {"Start": "2026-11-23T09:00:00Z"},
        {"End": "2026-11-23 08:00:00Z"},
        {"ShowAs": "busy"},
        {"Sensitivity": "5"},
    ],
)
def test_dime_inner_failure_inside_http_200_is_atomic(overrides: dict[str, str]) -> None:
    with FakeDime(known_resources={"JANE@contoso.com"}) as dime:
        r = post_import(dime, [upsert_call("g-ok"), upsert_call("g-bad", **overrides)])
        assert r.status_code == 200
        status, content = inner(r)
        assert status == 400 and content["Error"] and content["Description"]
        assert dime.appointments == {}  # the good call was not applied either


def test_dime_rejects_malformed_bodies_with_http_400(dime: FakeDime) -> None:
    not_strings = upsert_call()
    not_strings["ParameterValues"][7] = 0
    uneven = upsert_call()
    uneven["ParameterNames"].append("Extra")
    for body in ([not_strings], [uneven], "text", 5):
        r = post_import(dime, body)
        assert r.status_code == 400 and "message" in r.json()
    assert dime.appointments == {}


def test_dime_faults(dime: FakeDime) -> None:
    # (429 with Retry-After: tests/integration/test_retry_after.py, through the app's own client.)
    dime.fail_next(inner_status=500)
    r = post_import(dime, [upsert_call()])
    assert r.status_code == 200 and inner(r)[0] == 500
    assert dime.appointments == {}
    assert inner(post_import(dime, [upsert_call()]))[0] == 200
    assert len(dime.appointments) == 1


def test_dime_rest_appointment_routes(dime: FakeDime) -> None:
    h = {"X-API-KEY": "test-api-key"}
    appt = {"appointmentGuid": "a-1", "start": "2026-11-23T09:00:00Z", "end": "2026-11-23T10:00:00Z", "subject": "x"}
    assert httpx.post(f"{dime.base_url}/appointment", json=appt, headers=h).status_code == 200
    assert (
        httpx.put(
            f"{dime.base_url}/appointment", json={"appointmentGuid": "a-1", "subject": "y"}, headers=h
        ).status_code
        == 200
    )
    assert dime.rest_appointments["a-1"]["subject"] == "y"
    listed = httpx.get(
        f"{dime.base_url}/appointment",
        params={"startDate": "2026-11-23T00:00:00Z", "endDate": "2026-11-24T00:00:00Z"},
        headers=h,
    ).json()
    assert [a["appointmentGuid"] for a in listed] == ["a-1"]
    assert (
        httpx.request("DELETE", f"{dime.base_url}/appointment", json={"appointmentGuid": "a-1"}, headers=h).status_code
        == 200
    )
    assert dime.rest_appointments == {}


# ------------------------------------------------------------------------------------------
# Dime.Scheduler: the import as the vendor's SDK sends it (sdk-dotnet ExchangeAppointment)
# ------------------------------------------------------------------------------------------
def test_dime_appointment_id_first_and_matching(dime: FakeDime) -> None:
    no_id = upsert_call("g-1")
    no_id["ParameterNames"], no_id["ParameterValues"] = no_id["ParameterNames"][1:], no_id["ParameterValues"][1:]
    assert post_import(dime, [no_id]).status_code == 400
    status, content = inner(post_import(dime, [upsert_call("g-1")]))
    assert status == 200
    (answer,) = content["Appointments"]
    assert answer["Guid"] == "g-1" and answer["Id"] > 0
    assert inner(post_import(dime, [upsert_call("g-1", AppointmentId=str(answer["Id"]))]))[0] == 200
    assert inner(post_import(dime, [upsert_call("g-1", AppointmentId="99999")]))[0] == 400
    assert inner(post_import(dime, [upsert_call("g-1", AppointmentId="abc")]))[0] == 400


def test_dime_delete_refuses_empty_typed_values(dime: FakeDime) -> None:
    post_import(dime, [upsert_call("g-1")])
    for name in ("Start", "ShowAs", "CreatedByExchange"):
        empty = dict(upsert_call("g-1", **{name: ""}), StoredProcedureName=DELETE)
        status, content = inner(post_import(dime, [empty]))
        assert status == 400 and name in content["Description"]
    assert "g-1" in dime.appointments
    assert inner(post_import(dime, [dict(upsert_call("g-1"), StoredProcedureName=DELETE)]))[0] == 200
    assert "g-1" not in dime.appointments


def test_dime_pascal_envelope_and_success_false_inside_a_200() -> None:
    with FakeDime(envelope_keys="pascal") as dime:
        body = post_import(dime, [upsert_call("g-1")]).json()
        assert body["StatusCode"] == 200 and "statusCode" not in body
        dime.fail_next(success_false=True)
        r = post_import(dime, [upsert_call("g-2")])
        assert r.status_code == 200 and r.json()["StatusCode"] == 200
        assert json.loads(r.json()["Content"])["Success"] is False
        assert "g-2" not in dime.appointments
