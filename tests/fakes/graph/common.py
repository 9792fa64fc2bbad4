"""Constants, time helpers, Graph-shaped errors and the state records of ``FakeGraph``."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._http import Response

#: Windows zone names Graph also accepts, mapped to IANA (a useful subset, not the full CLDR table).
WINDOWS_TIME_ZONES: dict[str, str] = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "Pacific Standard Time": "America/Los_Angeles",
    "India Standard Time": "Asia/Kolkata",
    "Tokyo Standard Time": "Asia/Tokyo",
    "AUS Eastern Standard Time": "Australia/Sydney",
}

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
SENSITIVITY = ("normal", "personal", "private", "confidential")
IMPORTANCE = ("low", "normal", "high")
EVENT_TYPES = ("singleInstance", "occurrence", "exception", "seriesMaster")
CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")

MAX_SUBSCRIPTION_MINUTES = 10070
MIN_SUBSCRIPTION_MINUTES = 45
MAX_BATCH = 20
DEFAULT_INSTANCES_PAGE = 10  # Graph pages collections by 10 unless $top says otherwise
MAX_INSTANCES_PAGE = 1000
DEFAULT_PAGE_SIZE = 10

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
_PREFER = re.compile(r'([A-Za-z][\w.\-]*)\s*=\s*(?:"([^"]*)"|([^,;\s]+))')


# --------------------------------------------------------------------------------------------
# time helpers
# --------------------------------------------------------------------------------------------
class GraphError(Exception):
    """Raised inside handlers; turned into a Graph error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        return graph_error(self.status, self.code, self.message, self.headers)


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A Graph-shaped error: ``{"error": {"code", "message", "innerError"}}`` as JSON."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": _utc_now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def zone(name: str) -> tzinfo:
    """IANA or (a subset of) Windows zone name → tzinfo; unknown → ``KeyError``."""
    iana = WINDOWS_TIME_ZONES.get(name, name)
    if iana.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise KeyError(name) from exc


def parse_datetime(value: str | datetime, default_zone: str = "UTC") -> datetime:
    """Parse ISO-ish text (any number of fraction digits, ``Z``/offset optional) to aware UTC.

    A value without offset is read in ``default_zone`` (Graph's ``dateTime`` + ``timeZone`` pair).
    """
    if isinstance(value, datetime):
        dt = value
    else:
        m = _ISO.match(value.strip())
        if not m:
            raise ValueError(f"not a date-time: {value!r}")
        y, mo, d, h, mi, s, frac, off = m.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro)
        if off:
            if off.upper() == "Z":
                dt = dt.replace(tzinfo=UTC)
            else:
                sign = 1 if off[0] == "+" else -1
                digits = off[1:].replace(":", "")
                delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                dt = dt.replace(tzinfo=timezone(sign * delta))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(default_zone))
    return dt.astimezone(UTC)


def format_local(dt_utc: datetime, zone_name: str) -> str:
    """Graph's ``dateTime`` text: no offset, seven fraction digits, in ``zone_name``."""
    local = dt_utc.astimezone(zone(zone_name))
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0"


def format_utc(dt: datetime) -> str:
    """Graph's timestamp text, e.g. ``2026-11-20T10:00:00.1234560Z``."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def format_offset(dt: datetime) -> str:
    """Timestamp with an explicit offset, as notifications carry it (``…+00:00``)."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0+00:00"


def parse_prefer(headers: dict[str, str]) -> dict[str, str]:
    """``Prefer`` header(s) → ``{lower-case key: value}`` (several values may share one header)."""
    out: dict[str, str] = {}
    for m in _PREFER.finditer(headers.get("prefer", "")):
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


# --------------------------------------------------------------------------------------------
# state records
# --------------------------------------------------------------------------------------------
@dataclass
class _Event:
    mailbox: str
    data: dict[str, Any]  # Graph JSON except start/end/@odata.etag/singleValueExtendedProperties
    start_utc: datetime
    end_utc: datetime
    start_zone: str
    end_zone: str
    ext_props: dict[str, str] = field(default_factory=dict)
    seq: int = 0
    calendar: str = "primary"  # which calendar of the mailbox holds it (calendarView/delta: primary only)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def overlaps(self, start: datetime, end: datetime) -> bool:
        if self.start_utc == self.end_utc:
            return start <= self.start_utc < end
        return self.start_utc < end and self.end_utc > start


@dataclass
class _Series:
    """What a series master holds besides its pattern: moved/edited instances and cancelled ones,
    keyed by the occurrence id (which is derived from the master id and the original start)."""

    exceptions: dict[str, _Event] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)


@dataclass
class _DeltaToken:
    mailbox: str
    user_ref: str
    window: tuple[datetime, datetime]
    seq: int
    expired: str | None = None  # None, "gone" or "resync"


@dataclass
class _DeltaRound:
    token: _DeltaToken  # the state the round ends with (becomes the deltaLink)
    items: list[tuple[str, str]]  # (event id, "event" | "removed")


@dataclass
class _Subscription:
    json: dict[str, Any]
    mailbox: str
    change_types: frozenset[str]
    immutable_ids: bool
    reauthorizations: int = 0


@dataclass
class Delivery:
    """One POST the fake made to a receiver (notifications, lifecycle or validation)."""

    kind: str  # "notification" | "lifecycle" | "validation"
    url: str
    payload: Any
    status: int  # 0 when the receiver could not be reached


@dataclass
class _Outgoing:
    url: str
    notification: dict[str, Any]
