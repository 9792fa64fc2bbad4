"""An Outlook event as the sync needs it, read from Graph's JSON.

Every path (webhook worker, delta, reconcile's $batch) gets events as Graph JSON, so there is one
reader here. Times become aware UTC datetimes; all-day events keep their dates untouched, because
shifting them through a time zone is how all-day events end up at 02:00–02:00.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.core.dime_to_outlook.tag import tag_of


class EventFormatError(ValueError):
    """Graph returned an event we cannot read (a permanent problem for this event)."""


@dataclass(frozen=True)
class Event:
    id: str
    change_key: str | None
    ical_uid: str | None
    subject: str
    body: str
    start: datetime  # aware, UTC (all-day: midnight UTC of the first day)
    end: datetime  # aware, UTC (all-day: midnight UTC of the day after the last)
    is_all_day: bool
    show_as: str
    sensitivity: str
    importance: str
    categories: tuple[str, ...]
    is_cancelled: bool
    type: str
    series_master_id: str | None = None  # occurrences and exceptions: the series they belong to
    planner_tag: str | None = None  # our tag (Dime.Scheduler → Outlook wrote it), when read with $expand

    @property
    def is_private(self) -> bool:
        return self.sensitivity in ("private", "confidential")


_FRACTION = re.compile(r"\.(\d+)")


def _parse_local(value: str) -> datetime:
    """Graph's dateTime has up to 7 fractional digits and no offset; Python takes 6."""
    trimmed = _FRACTION.sub(lambda m: "." + m.group(1)[:6], value.strip().rstrip("Z"))
    try:
        return datetime.fromisoformat(trimmed)
    except ValueError:
        raise EventFormatError(f"unreadable dateTime {value!r}") from None


def _zone(name: str) -> timezone | ZoneInfo:
    if name.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder of the tzdata package
        raise EventFormatError(f"unknown time zone {name!r} (the app asks Graph for UTC)") from None


def parse_graph_time(value: Any, *, all_day: bool) -> datetime:
    """A Graph dateTimeTimeZone as an aware UTC datetime; all-day values keep their date."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise EventFormatError("missing start or end")
    local = _parse_local(value["dateTime"])
    if all_day:
        return datetime.combine(local.date(), time(0), tzinfo=UTC)
    zone = _zone(str(value.get("timeZone") or "UTC"))
    try:
        return local.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        raise EventFormatError(f"dateTime out of range {value['dateTime']!r}") from None


#: What a complete event carries (what the adapters $select). Delta items often lack some of
#: these (occurrences come with id, type, seriesMasterId, start and end only): such an item is a
#: signal to read the event in full, never something to fill with defaults.
REQUIRED_FIELDS = (
    "id",
    "changeKey",
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "showAs",
    "sensitivity",
    "importance",
    "categories",
    "isCancelled",
    "type",
)


class EventIncomplete(EventFormatError):
    """The JSON lacks fields the decision needs (a partial delta item): read the event in full."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__("partial event, missing " + ", ".join(missing))
        self.missing = missing


def missing_fields(document: dict[str, Any]) -> list[str]:
    """The required fields a document lacks (null counts as missing, except for body's content)."""
    return [name for name in REQUIRED_FIELDS if document.get(name) is None]


def _text(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise EventFormatError(f"{key} is not text: {type(value).__name__}")
    return value


def event_from_graph(document: dict[str, Any]) -> Event:
    """Read a complete event from Graph JSON (as returned with Prefer: outlook.timezone="UTC").

    EventIncomplete when a required field is missing: nothing is ever defaulted, because a
    default such as sensitivity "normal" would publish what a person did not consent to share.
    """
    event_id = document.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise EventFormatError("event without id")
    missing = missing_fields(document)
    if missing:
        raise EventIncomplete(missing)
    all_day = bool(document.get("isAllDay"))
    start = parse_graph_time(document.get("start"), all_day=all_day)
    end = parse_graph_time(document.get("end"), all_day=all_day)
    if end < start:
        raise EventFormatError("event ends before it starts")
    body = document.get("body")
    body_text = body.get("content") if isinstance(body, dict) else None
    if not isinstance(body_text, str):
        raise EventFormatError("body without text content")
    categories = document.get("categories")
    if not isinstance(categories, list):
        raise EventFormatError("categories is not a list")
    ical_uid = document.get("iCalUId")
    return Event(
        id=event_id,
        change_key=_text(document, "changeKey"),
        ical_uid=ical_uid if isinstance(ical_uid, str) else None,
        subject=_text(document, "subject"),
        body=body_text,
        start=start,
        end=end,
        is_all_day=all_day,
        show_as=_text(document, "showAs"),
        sensitivity=_text(document, "sensitivity"),
        importance=_text(document, "importance"),
        categories=tuple(c for c in categories if isinstance(c, str)),
        is_cancelled=bool(document.get("isCancelled")),
        type=_text(document, "type"),
        series_master_id=document.get("seriesMasterId") if isinstance(document.get("seriesMasterId"), str) else None,
        planner_tag=tag_of(document),
    )
