"""FakeGraph answers `$select` as Graph documents it ("Use query parameters", select parameter,
https://learn.microsoft.com/graph/query-parameters#select-parameter): the named properties plus
`id` and `@odata.etag`, with an `$expand`-ed extended property still returned ("Get
singleValueLegacyExtendedProperty", https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get).
Before, only `$select=id` was honoured and every other list got whole events, which hid an app
that asked for fields it never received."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.fakes import FakeGraph

AUTH = {"Authorization": "Bearer anything"}
PROP = "String {3c1f6a52-7d0e-4b9a-9f53-2f7d8e1b6a40} Name DimeSchedulerAppointment"
EXPAND = quote(f"singleValueExtendedProperties($filter=id eq '{PROP}')", safe="()$=")
WINDOW = "startDateTime=2026-11-23T00:00:00Z&endDateTime=2026-11-24T00:00:00Z"


@pytest.fixture
def graph():
    with FakeGraph() as fake:
        yield fake


def get(graph: FakeGraph, path: str) -> dict:
    answer = httpx.get(f"{graph.base_url}{path}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_select_returns_the_named_properties_with_id_and_etag(graph):
    uid = graph.add_user()["id"]
    event = graph.create_event(uid, subject="Standup", extended_properties={PROP: "g|R1"})["id"]
    for item in (
        get(graph, f"/users/{uid}/events/{quote(event, safe='')}?$select=subject,START"),
        get(graph, f"/users/{uid}/events?$select=subject,START")["value"][0],
        get(graph, f"/users/{uid}/calendar/calendarView?{WINDOW}&$select=subject,START")["value"][0],
    ):
        assert set(item) - {"@odata.context"} == {"id", "@odata.etag", "subject", "start"}
        assert item["subject"] == "Standup" and item["start"]["dateTime"].startswith("2026-11-23T09:00")


def test_select_keeps_what_expand_asked_for(graph):
    uid = graph.add_user()["id"]
    graph.create_event(uid, subject="Ours", extended_properties={PROP: "g|R1"})
    graph.create_event(uid, subject="Theirs")
    listing = get(graph, f"/users/{uid}/calendar/calendarView?{WINDOW}&$select=id,start,end&$expand={EXPAND}")
    by_keys = sorted(sorted(item) for item in listing["value"])
    assert by_keys == [
        ["@odata.etag", "end", "id", "singleValueExtendedProperties", "start"],
        ["@odata.etag", "end", "id", "start"],
    ]
    [ours] = [item for item in listing["value"] if "singleValueExtendedProperties" in item]
    assert ours["singleValueExtendedProperties"] == [{"id": PROP, "value": "g|R1"}]


def test_select_of_an_unknown_or_glued_name_returns_only_id_and_etag(graph):
    """What `$select=idstartend` (a list whose commas were lost) gets: nothing the app asked for."""
    uid = graph.add_user()["id"]
    graph.create_event(uid)
    [item] = get(graph, f"/users/{uid}/calendar/calendarView?{WINDOW}&$select=idstartend")["value"]
    assert set(item) == {"id", "@odata.etag"}


def test_instances_honour_select(graph):
    uid = graph.add_user()["id"]
    master = graph.create_series(uid, subject="Weekly", start="2026-11-23T09:00:00", end="2026-11-23T10:00:00")
    page = get(graph, f"/users/{uid}/events/{quote(master['id'], safe='')}/instances?{WINDOW}&$select=subject")
    assert page["value"] and all(set(item) == {"id", "@odata.etag", "subject"} for item in page["value"])
