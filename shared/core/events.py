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
    except (ZoneInfoNotFoundError, ValueError):
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


def _str(document: dict[str, Any], key: str, default: str = "") -> str:
    value = document.get(key)
    return value if isinstance(value, str) else default


def event_from_graph(document: dict[str, Any]) -> Event:
    """Read an event from Graph JSON (as returned with Prefer: outlook.timezone="UTC")."""
    event_id = document.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise EventFormatError("event without id")
    all_day = bool(document.get("isAllDay"))
    start = parse_graph_time(document.get("start"), all_day=all_day)
    end = parse_graph_time(document.get("end"), all_day=all_day)
    if end < start:
        raise EventFormatError("event ends before it starts")
    body = document.get("body")
    body_text = body.get("content") if isinstance(body, dict) else None
    if not isinstance(body_text, str):
        body_text = _str(document, "bodyPreview")
    categories = document.get("categories")
    return Event(
        id=event_id,
        change_key=document.get("changeKey") if isinstance(document.get("changeKey"), str) else None,
        ical_uid=document.get("iCalUId") if isinstance(document.get("iCalUId"), str) else None,
        subject=_str(document, "subject"),
        body=body_text,
        start=start,
        end=end,
        is_all_day=all_day,
        show_as=_str(document, "showAs", "unknown"),
        sensitivity=_str(document, "sensitivity", "normal"),
        importance=_str(document, "importance", "normal"),
        categories=tuple(c for c in categories if isinstance(c, str)) if isinstance(categories, list) else (),
        is_cancelled=bool(document.get("isCancelled")),
        type=_str(document, "type", "singleInstance"),
        planner_tag=tag_of(document),
    )
