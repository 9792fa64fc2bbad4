"""The queries the Graph adapter writes by hand (not through the SDK's query parameters) reach
Graph as written. kiota expands a RequestInformation URL as an RFC 6570 template, and
std-uritemplate drops the commas of its literal text: `$select=id,start,end` went out as
`$select=idstartend`, which real Graph does not answer with `start` (FakeGraph now honours every
`$select`, https://learn.microsoft.com/graph/query-parameters#select-parameter), and a tag value
holding a comma no longer matched in `$filter`."""

from __future__ import annotations

import asyncio

from shared.adapters.graph import EVENT_FIELDS, GraphGateway
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from tests.fakes.credential import StaticTokenCredential


def gateway(graph) -> GraphGateway:
    return GraphGateway(graph.base_url, StaticTokenCredential(), max_retries=0)


def test_tagged_in_window_asks_for_and_gets_each_event_start(graph):
    user = graph.add_user()["id"]
    ours = graph.create_event(
        user, start="2026-11-23T09:00:00", end="2026-11-23T10:00:00", extended_properties={TAG_PROPERTY_ID: "g|R1"}
    )["id"]
    graph.create_event(user, subject="personal")

    found = asyncio.run(gateway(graph).tagged_in_window(user, "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"))

    [listing] = [r for r in graph.requests if r.path.endswith("/calendar/calendarView")]
    assert listing.query["$select"] == "id,start,end"
    assert found is not None and [(e["id"], e["tag"]) for e in found] == [(ours, "g|R1")]
    assert found[0]["start"]["dateTime"].startswith("2026-11-23T09:00")


def test_find_tagged_events_reads_every_field_and_matches_a_value_with_a_comma(graph):
    user = graph.add_user()["id"]
    value = "6f1c2d3e-0000-4000-8000-000000000001|R,1"  # a resource number may hold a comma
    ours = graph.create_event(user, subject="Visit", extended_properties={TAG_PROPERTY_ID: value})["id"]
    graph.create_event(user, subject="Other", extended_properties={TAG_PROPERTY_ID: value.replace(",", "")})

    found = asyncio.run(gateway(graph).find_tagged_events(user, value))

    [lookup] = [r for r in graph.requests if r.path.endswith("/events")]
    assert lookup.query["$select"] == ",".join(EVENT_FIELDS)
    assert [e["id"] for e in found] == [ours]
    assert found[0]["subject"] == "Visit" and found[0]["changeKey"]
