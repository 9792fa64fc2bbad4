"""Reading Outlook events from Graph JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core.events import (
    Event,
    EventFormatError,
    EventIncomplete,
    event_from_graph,
    missing_fields,
    parse_graph_time,
)


def graph_event(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "AAMkAGI2TG93AAA=",
        "changeKey": "DwAAABYAAAB",
        "iCalUId": "040000008200E00074C5B7101A82E008",
        "subject": "Planning meeting",
        "bodyPreview": "preview text",
        "body": {"contentType": "text", "content": "full body text"},
        "start": {"dateTime": "2026-11-23T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-23T10:30:00.0000000", "timeZone": "UTC"},
        "isAllDay": False,
        "showAs": "busy",
        "sensitivity": "normal",
        "importance": "high",
        "categories": ["Red category", "Blue category"],
        "isCancelled": False,
        "type": "singleInstance",
    }
    document.update(overrides)
    return document


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_full_event() -> None:
    event = event_from_graph(graph_event())
    assert event == Event(
        id="AAMkAGI2TG93AAA=",
        change_key="DwAAABYAAAB",
        ical_uid="040000008200E00074C5B7101A82E008",
        subject="Planning meeting",
        body="full body text",
        start=utc(2026, 11, 23, 9, 0),
        end=utc(2026, 11, 23, 10, 30),
        is_all_day=False,
        show_as="busy",
        sensitivity="normal",
        importance="high",
        categories=("Red category", "Blue category"),
        is_cancelled=False,
        type="singleInstance",
    )
    assert event.start.utcoffset() == timedelta(0)


def test_seven_fractional_digits_are_truncated_to_microseconds() -> None:
    event = event_from_graph(
        graph_event(
            start={"dateTime": "2026-11-23T09:00:00.1234567", "timeZone": "UTC"},
            end={"dateTime": "2026-11-23T09:00:01.9999999", "timeZone": "UTC"},
        )
    )
    assert event.start == utc(2026, 11, 23, 9, 0, 0, 123456)
    assert event.end == utc(2026, 11, 23, 9, 0, 1, 999999)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-23T09:00:00",
        "2026-11-23T09:00:00Z",
        "2026-11-23T09:00:00.0000000",
        "2026-11-23T09:00:00.0000000Z",
        "2026-11-23T09:00:00.0",
        " 2026-11-23T09:00:00 ",
    ],
)
def test_utc_time_spellings(value: str) -> None:
    assert parse_graph_time({"dateTime": value, "timeZone": "UTC"}, all_day=False) == utc(2026, 11, 23, 9)


@pytest.mark.parametrize("zone", ["UTC", "utc", "Etc/UTC", "GMT", "Z", "", None])
def test_utc_zone_spellings(zone: str | None) -> None:
    value: dict[str, Any] = {"dateTime": "2026-07-01T12:00:00"}
    if zone is not None:
        value["timeZone"] = zone
    assert parse_graph_time(value, all_day=False) == utc(2026, 7, 1, 12)


@pytest.mark.parametrize(
    ("local", "expected_utc"),
    [
        # Europe/Brussels leaves CET (+01:00) for CEST (+02:00) at 02:00 local on 2026-03-29.
        ("2026-03-29T01:30:00.0000000", utc(2026, 3, 29, 0, 30)),
        ("2026-03-29T03:30:00.0000000", utc(2026, 3, 29, 1, 30)),
        ("2026-03-28T12:00:00", utc(2026, 3, 28, 11, 0)),
        ("2026-03-30T12:00:00", utc(2026, 3, 30, 10, 0)),
        # ... and returns to CET at 03:00 local on 2026-10-25.
        ("2026-10-24T12:00:00", utc(2026, 10, 24, 10, 0)),
        ("2026-10-26T12:00:00", utc(2026, 10, 26, 11, 0)),
    ],
)
def test_brussels_across_dst(local: str, expected_utc: datetime) -> None:
    converted = parse_graph_time({"dateTime": local, "timeZone": "Europe/Brussels"}, all_day=False)
    assert converted == expected_utc
    assert converted.utcoffset() == timedelta(0)


def test_event_spanning_the_dst_switch_is_one_hour_shorter() -> None:
    event = event_from_graph(
        graph_event(
            start={"dateTime": "2026-03-29T01:30:00.0000000", "timeZone": "Europe/Brussels"},
            end={"dateTime": "2026-03-29T03:30:00.0000000", "timeZone": "Europe/Brussels"},
        )
    )
    assert event.end - event.start == timedelta(hours=1)


def test_all_day_event_keeps_its_dates() -> None:
    event = event_from_graph(
        graph_event(
            isAllDay=True,
            start={"dateTime": "2026-11-23T00:00:00.0000000", "timeZone": "Pacific/Auckland"},
            end={"dateTime": "2026-11-24T00:00:00.0000000", "timeZone": "Pacific/Auckland"},
        )
    )
    assert event.is_all_day is True
    assert event.start == utc(2026, 11, 23)
    assert event.end == utc(2026, 11, 24)


def test_all_day_event_in_a_negative_offset_zone_keeps_its_dates() -> None:
    event = event_from_graph(
        graph_event(
            isAllDay=True,
            start={"dateTime": "2026-03-28T00:00:00", "timeZone": "America/Los_Angeles"},
            end={"dateTime": "2026-03-31T00:00:00", "timeZone": "America/Los_Angeles"},
        )
    )
    assert (event.start, event.end) == (utc(2026, 3, 28), utc(2026, 3, 31))


def test_all_day_ignores_even_an_unknown_zone() -> None:
    value = {"dateTime": "2026-11-23T00:00:00", "timeZone": "W. Europe Standard Time"}
    assert parse_graph_time(value, all_day=True) == utc(2026, 11, 23)


def test_zero_length_event_allowed() -> None:
    same = {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"}
    event = event_from_graph(graph_event(start=same, end=dict(same)))
    assert event.start == event.end


def test_end_before_start_is_an_error() -> None:
    with pytest.raises(EventFormatError):
        event_from_graph(
            graph_event(
                start={"dateTime": "2026-11-23T10:00:00", "timeZone": "UTC"},
                end={"dateTime": "2026-11-23T09:59:59", "timeZone": "UTC"},
            )
        )


def test_end_before_start_only_after_zone_conversion_is_an_error() -> None:
    # 10:00 UTC vs 10:30 Brussels (= 09:30 UTC): the end is before the start.
    with pytest.raises(EventFormatError):
        event_from_graph(
            graph_event(
                start={"dateTime": "2026-11-23T10:00:00", "timeZone": "UTC"},
                end={"dateTime": "2026-11-23T10:30:00", "timeZone": "Europe/Brussels"},
            )
        )


def _without(key: str) -> dict[str, Any]:
    document = graph_event()
    del document[key]
    return document


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(_without("id"), id="no-id"),
        pytest.param(graph_event(id=""), id="empty-id"),
        pytest.param(graph_event(id=123), id="numeric-id"),
        pytest.param(graph_event(id=None), id="null-id"),
        pytest.param(_without("start"), id="no-start"),
        pytest.param(_without("end"), id="no-end"),
        pytest.param(graph_event(start=None), id="null-start"),
        pytest.param(graph_event(start="2026-11-23T09:00:00"), id="start-as-string"),
        pytest.param(graph_event(start={"timeZone": "UTC"}), id="start-without-dateTime"),
        pytest.param(graph_event(start={"dateTime": 20261123, "timeZone": "UTC"}), id="numeric-dateTime"),
        pytest.param(graph_event(start={"dateTime": "not a date", "timeZone": "UTC"}), id="garbage-dateTime"),
        pytest.param(graph_event(start={"dateTime": "2026-13-01T00:00:00", "timeZone": "UTC"}), id="month-13"),
        pytest.param(graph_event(start={"dateTime": "", "timeZone": "UTC"}), id="empty-dateTime"),
    ],
)
def test_unreadable_event(document: dict[str, Any]) -> None:
    with pytest.raises(EventFormatError):
        event_from_graph(document)


@pytest.mark.parametrize(
    "zone", ["W. Europe Standard Time", "Mars/Olympus_Mons", "Europe", "../../etc/passwd", "/etc/localtime", "x" * 300]
)
def test_unknown_time_zone_is_an_event_format_error(zone: str) -> None:
    with pytest.raises(EventFormatError):
        event_from_graph(graph_event(start={"dateTime": "2026-11-23T09:00:00", "timeZone": zone}))


def test_event_format_error_is_a_value_error() -> None:
    assert issubclass(EventFormatError, ValueError)


@pytest.mark.parametrize(
    "field", ["changeKey", "subject", "body", "isAllDay", "showAs", "sensitivity", "importance", "categories", "type"]
)
def test_a_missing_field_is_never_defaulted(field: str) -> None:
    document = graph_event(sensitivity="private")
    del document[field]
    with pytest.raises(EventIncomplete) as caught:
        event_from_graph(document)
    assert caught.value.missing == [field]


def test_a_partial_delta_occurrence_is_incomplete() -> None:
    item = {
        "@odata.etag": 'W/"x"',
        "id": "occ",
        "type": "occurrence",
        "seriesMasterId": "master",
        "start": {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-23T10:00:00", "timeZone": "UTC"},
    }
    assert missing_fields(item) == [
        "changeKey",
        "subject",
        "body",
        "isAllDay",
        "showAs",
        "sensitivity",
        "importance",
        "categories",
        "isCancelled",
    ]
    with pytest.raises(EventIncomplete):
        event_from_graph(item)


@pytest.mark.parametrize("overrides", [{"sensitivity": 3}, {"showAs": ["busy"]}, {"type": 1}, {"categories": "Red"}])
def test_wrongly_typed_fields_are_unreadable_not_defaulted(overrides: dict[str, Any]) -> None:
    with pytest.raises(EventFormatError):
        event_from_graph(graph_event(**overrides))


def test_series_master_id_is_kept() -> None:
    event = event_from_graph(graph_event(type="occurrence", seriesMasterId="master-1"))
    assert (event.type, event.series_master_id) == ("occurrence", "master-1")


def test_values_are_passed_through_verbatim() -> None:
    event = event_from_graph(
        graph_event(showAs="workingElsewhere", sensitivity="confidential", importance="low", type="occurrence")
    )
    assert (event.show_as, event.sensitivity, event.importance, event.type) == (
        "workingElsewhere",
        "confidential",
        "low",
        "occurrence",
    )


def test_categories_filtered_to_strings() -> None:
    event = event_from_graph(graph_event(categories=["Red", 1, None, {"x": 1}, "Blue", ["nested"], ""]))
    assert event.categories == ("Red", "Blue", "")


def test_body_from_body_content() -> None:
    event = event_from_graph(graph_event(body={"contentType": "html", "content": "<p>Hi</p>"}, bodyPreview="Hi"))
    assert event.body == "<p>Hi</p>"


def test_empty_body_content_is_kept_rather_than_preview() -> None:
    event = event_from_graph(graph_event(body={"contentType": "text", "content": ""}, bodyPreview="preview"))
    assert event.body == ""


@pytest.mark.parametrize("body", ["plain string body", {"contentType": "text"}, {"content": 42}, ["content"]])
def test_a_body_without_text_is_unreadable(body: Any) -> None:
    with pytest.raises(EventFormatError):
        event_from_graph(graph_event(body=body, bodyPreview="the preview"))


@pytest.mark.parametrize(("flag", "expected"), [(True, True), (False, False), ("", False)])
def test_flags(flag: Any, expected: bool) -> None:
    event = event_from_graph(graph_event(isCancelled=flag))
    assert event.is_cancelled is expected


@pytest.mark.parametrize(
    ("sensitivity", "private"), [("normal", False), ("personal", False), ("private", True), ("confidential", True)]
)
def test_is_private(sensitivity: str, private: bool) -> None:
    assert event_from_graph(graph_event(sensitivity=sensitivity)).is_private is private


def test_input_document_not_mutated() -> None:
    document = graph_event()
    snapshot = repr(document)
    event_from_graph(document)
    assert repr(document) == snapshot
