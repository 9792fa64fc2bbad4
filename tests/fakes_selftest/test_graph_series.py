"""Self-tests of FakeGraph's recurring series, partial delta items, deleted events and second
calendars, against Microsoft Learn (https://learn.microsoft.com/graph/api/event-list-instances, https://learn.microsoft.com/graph/delta-query-events)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.fakes import FakeGraph

AUTH = {"Authorization": "Bearer anything", "Prefer": 'outlook.timezone="UTC"'}
WINDOW = {"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"}


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph(seed=7) as fake:
        fake.add_user(upn="ann@contoso.com", object_id="00000000-0000-0000-0000-00000000000a")
        yield fake


def get(graph: FakeGraph, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{graph.base_url}/users/ann@contoso.com{path}", params=params, headers=AUTH)


def delta_items(graph: FakeGraph, link: str | None = None) -> tuple[list[dict[str, Any]], str]:
    url, params = link or f"{graph.base_url}/users/ann@contoso.com/calendarView/delta", None if link else WINDOW
    items: list[dict[str, Any]] = []
    while True:
        page = httpx.get(url, params=params, headers={**AUTH, "Prefer": "odata.maxpagesize=50"}).json()
        items += page["value"]
        if "@odata.deltaLink" in page:
            return items, page["@odata.deltaLink"]
        url, params = page["@odata.nextLink"], None


def test_series_expands_in_calendar_view_and_instances_and_get_returns_an_occurrence(graph: FakeGraph) -> None:
    master = graph.create_series("ann@contoso.com", "Stand-up", "2026-11-23T09:00:00", "2026-11-23T09:15:00", count=5)
    assert master["type"] == "seriesMaster" and master["recurrence"]["range"]["numberOfOccurrences"] == 5
    view = get(graph, "/calendarView", **WINDOW).json()["value"]
    assert [e["type"] for e in view] == ["occurrence"] * 5  # never the master
    assert {e["seriesMasterId"] for e in view} == {master["id"]}
    assert [e["start"]["dateTime"][:10] for e in view] == [f"2026-11-{d}" for d in (23, 24, 25, 26, 27)]
    path = "/events/" + quote(master["id"], safe="") + "/instances"
    body = get(graph, path, **WINDOW, **{"$top": "2"}).json()
    listed, pages = list(body["value"]), 1
    while "@odata.nextLink" in body:
        body = httpx.get(body["@odata.nextLink"], headers=AUTH).json()
        listed, pages = listed + body["value"], pages + 1
    assert pages == 3 and [e["id"] for e in listed] == [e["id"] for e in view]
    one = get(graph, "/events/" + quote(view[2]["id"], safe=""))
    assert one.status_code == 200 and one.json()["subject"] == "Stand-up" and one.json()["type"] == "occurrence"


def test_weekly_series_with_a_moved_instance_notifies_only_the_master(graph: FakeGraph) -> None:
    graph.auto_notify = True
    master = graph.create_series(
        "ann@contoso.com", "Weekly", "2026-11-24T14:00:00", "2026-11-24T15:00:00", pattern="weekly", count=4
    )
    instances = graph.instances("ann@contoso.com", master["id"])
    assert [i["start"]["dateTime"][:10] for i in instances] == ["2026-11-24", "2026-12-01", "2026-12-08", "2026-12-15"]
    changed: list[str] = []
    graph._changed = lambda mailbox, event_id, change: changed.append(event_id)  # type: ignore[method-assign]
    moved = graph.update_instance(
        "ann@contoso.com", instances[1]["id"], start="2026-12-02T16:00:00", end="2026-12-02T17:00:00"
    )
    assert moved["type"] == "exception" and moved["id"] == instances[1]["id"]
    graph.cancel_instance("ann@contoso.com", instances[2]["id"])
    assert changed == [master["id"], master["id"]]  # the master only
    after = graph.instances("ann@contoso.com", master["id"])
    assert [i["id"] for i in after] == [instances[0]["id"], instances[1]["id"], instances[3]["id"]]
    assert after[1]["start"]["dateTime"].startswith("2026-12-02T16:00")


def test_delta_lists_series_items_partially_and_removes_cancelled_and_deleted_ones(graph: FakeGraph) -> None:
    graph.create_event("ann@contoso.com", "Single", body="hello", sensitivity="private")
    master = graph.create_series("ann@contoso.com", "Daily", "2026-11-23T09:00:00", "2026-11-23T09:15:00", count=3)
    items, link = delta_items(graph)
    series = [i for i in items if i.get("seriesMasterId") == master["id"] or i["id"] == master["id"]]
    assert len(series) == 4  # the master (may be listed) and three occurrences
    for item in series:
        assert set(item) <= {"@odata.etag", "id", "type", "seriesMasterId", "start", "end"}
    single = next(i for i in items if i.get("type") == "singleInstance")
    assert "body" not in single and single["sensitivity"] == "private"
    occurrences = graph.instances("ann@contoso.com", master["id"])
    graph.cancel_instance("ann@contoso.com", occurrences[0]["id"])
    items, link = delta_items(graph, link)
    assert {"id": occurrences[0]["id"], "@removed": {"reason": "deleted"}}.items() <= next(
        i for i in items if i["id"] == occurrences[0]["id"]
    ).items()
    graph.delete_event("ann@contoso.com", master["id"])
    items, _ = delta_items(graph, link)
    removed = {i["id"] for i in items if "@removed" in i}
    assert {master["id"], occurrences[1]["id"], occurrences[2]["id"]} <= removed


@pytest.mark.parametrize("body", [None, "text", "html"])
def test_delta_body_option_and_sparse_items(body: str | None) -> None:
    with FakeGraph(seed=1, delta_body=body, delta_sparse=True) as graph:
        graph.create_event("ann@contoso.com", "Single", body="a < b", sensitivity="private")
        items, _ = delta_items(graph)
        (item,) = items
        assert "sensitivity" not in item and "showAs" not in item  # missing, not defaulted
        if body is None:
            assert "body" not in item
        else:
            assert item["body"]["contentType"] == body
            assert ("a &lt; b" if body == "html" else "a < b") in item["body"]["content"]


@pytest.mark.parametrize("status", [404, 200])
def test_get_of_a_deleted_event_plays_both_answers_but_calendar_view_never_lists_it(status: int) -> None:
    with FakeGraph(seed=1, deleted_get_status=status) as graph:
        ev = graph.create_event("ann@contoso.com", "Gone", start="2026-11-23T09:00:00", end="2026-11-23T10:00:00")
        graph.delete_event("ann@contoso.com", ev["id"])
        assert get(graph, "/events/" + quote(ev["id"], safe="")).status_code == status
        view = get(graph, "/calendarView", startDateTime="2026-11-23T09:00:00Z", endDateTime="2026-11-23T10:00:00Z")
        assert view.json()["value"] == []


def test_second_calendar_is_notified_but_not_in_calendar_view_or_delta(graph: FakeGraph) -> None:
    graph.create_event("ann@contoso.com", "Primary")
    other = graph.create_event("ann@contoso.com", "Birthdays", calendar="Birthdays")
    assert get(graph, "/events/" + quote(other["id"], safe="")).status_code == 200
    assert [e["subject"] for e in get(graph, "/calendarView", **WINDOW).json()["value"]] == ["Primary"]
    assert [e["subject"] for e in get(graph, "/calendar/calendarView", **WINDOW).json()["value"]] == ["Primary"]
    items, _ = delta_items(graph)
    assert [i["subject"] for i in items] == ["Primary"]


def test_rest_calendars_and_a_posted_recurrence_make_a_series(graph: FakeGraph) -> None:
    base = f"{graph.base_url}/users/ann@contoso.com"
    calendar = httpx.post(f"{base}/calendars", json={"name": "Side"}, headers=AUTH).json()
    event = {"subject": "x", "start": {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"}}
    event["end"] = {"dateTime": "2026-11-23T10:00:00", "timeZone": "UTC"}
    side = httpx.post(f"{base}/calendars/{calendar['id']}/events", json=event, headers=AUTH).json()
    assert get(graph, "/calendarView", **WINDOW).json()["value"] == []
    recurrence = {
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2026-11-23", "numberOfOccurrences": 2},
    }
    master = httpx.post(f"{base}/events", json={**event, "recurrence": recurrence}, headers=AUTH).json()
    assert master["type"] == "seriesMaster"
    assert [e["seriesMasterId"] for e in get(graph, "/calendarView", **WINDOW).json()["value"]] == [master["id"]] * 2
    assert httpx.delete(f"{base}/calendars/{calendar['id']}", headers=AUTH).status_code == 204
    assert graph.get_event("ann@contoso.com", side["id"]) is None


def test_calendar_view_pages_by_ten_or_top_and_a_batch_member_carries_its_next_link(graph: FakeGraph) -> None:
    for n in range(12):
        graph.create_event("ann@contoso.com", subject=f"E{n}")
    first = get(graph, "/calendar/calendarView", **WINDOW).json()
    rest = httpx.get(first["@odata.nextLink"], headers=AUTH).json()
    assert len(first["value"]) == 10 and len(rest["value"]) == 2 and "@odata.nextLink" not in rest
    url = f"/users/ann@contoso.com/calendar/calendarView?startDateTime={WINDOW['startDateTime']}"
    url += f"&endDateTime={WINDOW['endDateTime']}&$top=5&$select=id"
    batch = {"requests": [{"id": "1", "method": "GET", "url": url}]}
    [member] = httpx.post(f"{graph.base_url}/$batch", json=batch, headers=AUTH).json()["responses"]
    assert member["status"] == 200 and len(member["body"]["value"]) == 5
    following = httpx.get(member["body"]["@odata.nextLink"], headers=AUTH).json()["value"]
    assert [e["id"] for e in following] == [e["id"] for e in first["value"][5:10]]
    # $select=id answers the ids and etags only, as Graph does; the nextLink keeps it
    assert {key for e in member["body"]["value"] + following for key in e} == {"id", "@odata.etag"}
