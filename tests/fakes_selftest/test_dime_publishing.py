"""FakeDime publishes as Dime.Scheduler does (tests/fakes/dime_board.py cites the sources): hooks
get `Assignments` with offsets, connectors `Resources` with local times and the internal Id; every
non-200 answer, 4xx included, is retried 3 times with backoff (DSWBHK020), then kept for the retry
job; deliveries failing again and again open a circuit breaker (DSWBHK030)."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.fakes import FakeDime

KEY = {"X-API-KEY": "test-api-key"}
START = datetime(2025, 10, 2, 7, tzinfo=UTC)  # 09:00 in Brussels (CEST)
END = datetime(2025, 10, 2, 15, tzinfo=UTC)


class Partner:
    """A receiver answering the statuses queued in `answers` (then 200), recording every body."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(length)))
                status = outer.answers.pop(0) if outer.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/dime/publications"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dime(monkeypatch):
    client = httpx.Client()  # one connection pool for the board's deliveries (no TLS set-up per POST)
    monkeypatch.setattr(httpx, "post", client.post)
    with FakeDime() as fake, client:
        fake.board.add_resource("R-JANE", "jane@contoso.com", name="Jane")
        yield fake


@pytest.fixture
def partner():
    receiver = Partner()
    yield receiver
    receiver.close()


def test_a_connector_posts_local_times_resources_and_the_internal_id(dime, partner):
    board = dime.board
    board.time_zone = "Europe/Brussels"
    board.add_connector(partner.url)
    guid = board.plan("Sick", START, END, ["R-JANE"], category="SICK")
    assert board.flush() == [200]
    [body] = partner.bodies
    assert (body["StartDate"], body["EndDate"]) == ("2025-10-02T09:00:00", "2025-10-02T17:00:00")
    assert body["Resources"] == [{"ResourceNo": "R-JANE", "Email": "jane@contoso.com", "DisplayName": "Jane"}]
    assert body["Category"] == {"Name": "SICK", "Color": "#ff0000"} and "Assignments" not in body
    assert body["AppointmentGuid"] == guid and body["Id"] == board.appointments[guid].id


@pytest.mark.parametrize(
    ("shape", "item"),
    [
        ("nested", {"ResourceId": 1, "Resource": {"ResourceNo": "R-JANE", "Email": "jane@contoso.com"}}),
        ("number", "R-JANE"),
    ],
)
def test_the_unverified_resources_shapes_and_a_payload_without_guid(dime, partner, shape, item):
    board = dime.board
    board.resources_shape, board.connector_guid = shape, False
    board.add_connector(partner.url)
    board.plan("Visit", START, END, ["R-JANE"])
    board.flush()
    [body] = partner.bodies
    assert "AppointmentGuid" not in body and isinstance(body["Id"], int)
    resource = body["Resources"][0]
    assert resource == item if shape == "number" else resource["Resource"]["ResourceNo"] == "R-JANE"


def test_hooks_get_the_api_description_s_schema(dime, partner):
    board = dime.board
    board.time_zone = "Europe/Brussels"
    answer = httpx.post(
        f"{dime.base_url}/webhooks/AppointmentCreated",
        json={"sourceApp": "BC", "notificationURL": partner.url, "resource": "Appointments", "changeType": ["Create"]},
        headers=KEY,
    )
    assert answer.status_code == 201
    guid = board.plan("Visit", START, END, ["R-JANE"])
    board.flush()
    [body] = partner.bodies
    assert body["AppointmentGuid"] == guid and body["StartDate"] == "2025-10-02T07:00:00+00:00"
    assert body["Assignments"][0]["Resource"]["ResourceNo"] == "R-JANE" and "Resources" not in body


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 500, 503, 202])
def test_every_non_200_answer_is_retried_three_times_with_backoff(dime, partner, status):
    board = dime.board
    board.add_connector(partner.url)
    board.plan("Visit", START, END, ["R-JANE"])
    partner.answers = [status] * 4
    assert board.flush() == [status]
    [publication] = board.failed
    assert publication.statuses == [status] * 4 and len(partner.bodies) == 4
    delays = publication.backoffs
    assert len(delays) == 3 and all(later > earlier for earlier, later in itertools.pairwise(delays))
    assert 2.0 <= delays[0] <= 3.0 and 8.0 <= delays[2] <= 12.0  # exponential, with jitter
    assert board.retry_deliveries() == [200] and board.failed == [] and len(partner.bodies) == 5


def test_a_retry_that_succeeds_stops_there(dime, partner):
    waited: list[float] = []
    board = dime.board
    board.backoff_sleep = waited.append
    board.add_connector(partner.url)
    board.plan("Visit", START, END, ["R-JANE"])
    partner.answers = [503, 400]
    assert board.flush() == [200]
    [publication] = board.delivered
    assert publication.statuses == [503, 400, 200] and waited == publication.backoffs and len(waited) == 2


def test_repeated_failures_open_the_circuit_breaker(dime, partner):
    board = dime.board
    board.add_connector(partner.url)
    partner.answers = [400] * 100
    for n in range(board.breaker_after):
        board.plan(f"Visit {n}", START, END, ["R-JANE"])
    board.flush()
    assert board.open_breakers == {partner.url} and len(partner.bodies) == 4 * board.breaker_after
    board.plan("One more", START, END, ["R-JANE"])
    assert board.flush() == [0] and len(partner.bodies) == 4 * board.breaker_after  # nothing sent
    assert board.retry_deliveries() == [0] * (board.breaker_after + 1)  # the retry job is held back too
    partner.answers = []
    board.close_breaker(partner.url)
    assert board.retry_deliveries() == [200] * (board.breaker_after + 1) and board.failed == []


def test_a_success_resets_the_count_towards_the_breaker(dime, partner):
    board = dime.board
    board.add_connector(partner.url)
    for n in range(board.breaker_after * 2):
        board.plan(f"Visit {n}", START, END, ["R-JANE"])
        partner.answers = [400] * 4 if n % 2 else []
        board.flush()
    assert board.open_breakers == set()


@pytest.mark.parametrize("shape", ["pascal", "flat", "envelope"])
def test_get_appointment_by_id(dime, shape):
    board = dime.board
    board.listing_shape = shape
    guid = board.plan("Visit", START, END, ["R-JANE"])
    appointment_id = board.appointments[guid].id
    answer = httpx.get(f"{dime.base_url}/appointment/{appointment_id}", headers=KEY)
    assert answer.status_code == 200
    item = answer.json()["value"][0] if shape == "envelope" else answer.json()
    assert (item.get("AppointmentGuid") or item.get("appointmentGuid")) == guid
    assert (item.get("id") or item.get("Id")) == appointment_id
    board.delete(guid)
    assert httpx.get(f"{dime.base_url}/appointment/{appointment_id}", headers=KEY).status_code == 404
    assert httpx.get(f"{dime.base_url}/appointment/{appointment_id}").status_code == 401
