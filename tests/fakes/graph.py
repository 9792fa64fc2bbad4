"""``FakeGraph``: a stateful, loopback Microsoft Graph for calendar sync tests and offline demos.

Why a fake and not recorded responses: the connector's correctness lives in how it reacts to
Graph's *behaviour* (changeKeys that move on every edit, delta rounds and expired tokens, duplicate
and lost notifications, throttling inside ``$batch``), so the fake keeps real state and follows the
facts written down in ``/work/shared/reference/graph.md``. It is a real HTTP server, so
msgraph-sdk's middleware, URL encoding of ids and retries all run for real.

Deliberate choices (documented so nobody mistakes them for Graph facts):

* Times are stored in UTC. A GET without ``Prefer: outlook.timezone`` returns an event in the zone
  it was created in (real Graph defaults to UTC): code that forgets the ``Prefer`` header gets
  non-UTC times and its tests fail, which is the point.
* Event ids always look like immutable ids; ``Prefer: IdType="ImmutableId"`` is recorded (in
  ``requests`` and per subscription) but does not change ids.
* Notification URLs may be plain ``http`` (loopback receivers); real Graph demands https.
* ``singleValueExtendedProperties`` appear in REST answers only when ``$expand``-ed, like Graph;
  the Python accessors (``get_event``/``events``) always include them when present.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from ._http import FaultInjector, LoopbackServer, RecordedRequest, Request, Response

__all__ = ["WINDOWS_TIME_ZONES", "Delivery", "FakeGraph"]

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

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def overlaps(self, start: datetime, end: datetime) -> bool:
        if self.start_utc == self.end_utc:
            return start <= self.start_utc < end
        return self.start_utc < end and self.end_utc > start


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


# --------------------------------------------------------------------------------------------
# the fake
# --------------------------------------------------------------------------------------------
class FakeGraph(LoopbackServer):
    """A loopback Graph v1.0 for users, events, calendarView delta, ``$batch`` and subscriptions.

    Start it per test (``with FakeGraph() as graph:``), point the client at ``graph.base_url``.
    Seed it (``seed=``) for reproducible ids, tokens, shuffles and random faults.
    """

    def __init__(
        self,
        tenant_id: str | None = None,
        *,
        seed: int | None = None,
        auto_notify: bool = False,
        notify_duplicates: int = 3,
        notify_drop_rate: float = 0.0,
        notify_reorder: bool = False,
        notify_batch_size: int = 1,
        notify_background: bool = False,
        validation_timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """
        Args:
            tenant_id: the tenant the notifications claim (random uuid by default).
            seed: seeds every random choice of the fake (ids, tokens, reorder, drops, faults).
            auto_notify: emit change notifications for every create/update/delete, whether made
                through the helpers or the REST API. They wait in an outbox until
                ``flush_notifications()`` (or are sent by a background thread, see below).
            notify_duplicates: each change is sent this many times (Graph often sends three).
            notify_drop_rate: probability that a change is never notified (Graph drops some).
            notify_reorder: shuffle the outbox (seeded) when flushing.
            notify_batch_size: how many notifications share one POST.
            notify_background: a background thread flushes the outbox continuously (demo mode).
            validation_timeout: seconds Graph waits for the validation answer (10 s).
            clock: replaces ``datetime.now(timezone.utc)``, e.g. to age subscriptions.
        """
        super().__init__()
        self.tenant_id: str = tenant_id or str(uuid.uuid4())
        self.auto_notify = auto_notify
        self.notify_duplicates = notify_duplicates
        self.notify_drop_rate = notify_drop_rate
        self.notify_reorder = notify_reorder
        self.notify_batch_size = notify_batch_size
        self.notify_background = notify_background
        self.validation_timeout = validation_timeout
        self.application_id: str = str(uuid.uuid4())
        self._clock = clock or _utc_now
        self._rng = random.Random(seed)
        self._notify_rng = random.Random(None if seed is None else seed + 1)
        self._lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._events: dict[str, dict[str, _Event]] = {}
        self._tombstones: dict[str, dict[str, int]] = {}
        self._transactions: dict[tuple[str, str], str] = {}
        self._seq = 0
        self._delta_tokens: dict[str, _DeltaToken] = {}
        self._skip_tokens: dict[str, tuple[_DeltaRound, int, int]] = {}  # → (round, offset, page size)
        self._subscriptions: dict[str, _Subscription] = {}
        self._outbox: list[_Outgoing] = []
        self._faults = FaultInjector()
        self.requests: list[RecordedRequest] = []
        self.batch_members: list[RecordedRequest] = []
        self.deliveries: list[Delivery] = []
        self._wake = threading.Event()
        self._pump: threading.Thread | None = None
        self._pump_stop = False

    # ---------------------------------------------------------------- lifecycle / addresses
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1.0`` (no trailing slash, as msgraph's adapter needs)."""
        return f"{self.origin}/v1.0"

    def __enter__(self) -> FakeGraph:
        return self.start()

    def start(self) -> FakeGraph:
        super().start()
        if self._pump is None:
            self._pump_stop = False
            self._pump = threading.Thread(target=self._pump_loop, name="FakeGraph-notify", daemon=True)
            self._pump.start()
        return self

    def stop(self) -> None:
        self._pump_stop = True
        self._wake.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
            self._pump = None
        super().stop()

    def _pump_loop(self) -> None:
        while not self._pump_stop:
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            if self._pump_stop:
                return
            if self.notify_background:
                self.flush_notifications()

    # ---------------------------------------------------------------- ids
    def _b64(self, n: int, urlsafe: bool) -> str:
        raw = bytes(self._rng.getrandbits(8) for _ in range(n))
        return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode("ascii")

    def new_event_id(self) -> str:
        """A fresh id shaped like an immutable event id: base64url, with '-' and '_', ending in '='."""
        while True:
            candidate = "AAkALg" + self._b64(68, urlsafe=True)  # 68 bytes → one '=' of padding
            if "-" in candidate and "_" in candidate and candidate.endswith("="):
                return candidate

    def _new_change_key(self) -> str:
        return self._b64(22, urlsafe=False)

    def _new_token(self) -> str:
        return self._b64(24, urlsafe=True).rstrip("=")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ---------------------------------------------------------------- users
    def add_user(
        self,
        mail: str | None = None,
        upn: str | None = None,
        object_id: str | None = None,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """Register a mailbox. Without ``mail`` and ``upn`` both are generated; with only ``upn``
        the user has ``mail: null`` (as unlicensed or some synced users do)."""
        with self._lock:
            n = len(self._users) + 1
            if mail is None and upn is None:
                upn = mail = f"user{n}@contoso.onmicrosoft.com"
            upn = upn or mail
            oid = (object_id or str(uuid.UUID(int=self._rng.getrandbits(128), version=4))).lower()
            user = {
                "id": oid,
                "mail": mail,
                "userPrincipalName": upn,
                "displayName": display_name or (upn or oid).split("@")[0],
            }
            self._users[oid] = user
            self._events.setdefault(oid, {})
            self._tombstones.setdefault(oid, {})
            return dict(user)

    def _find_user(self, ref: str) -> dict[str, Any] | None:
        low = ref.lower()
        user = self._users.get(low)
        if user is not None:
            return user
        for u in self._users.values():
            if (u["userPrincipalName"] or "").lower() == low:
                return u
        return None

    def _mailbox(self, ref: str, *, create: bool = False) -> str:
        """Object id of a user addressed by object id or UPN (helpers may auto-register)."""
        user = self._find_user(ref)
        if user is None:
            if not create:
                raise GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
            user = self.add_user(upn=ref, mail=ref) if "@" in ref else self.add_user(object_id=ref)
        return str(user["id"])

    # ---------------------------------------------------------------- event rendering
    def _render(
        self,
        ev: _Event,
        tz_pref: str | None = None,
        expand: set[str] | bool = False,
    ) -> dict[str, Any]:
        """Graph JSON of an event. ``expand``: True = all extended properties, a set = those ids."""
        out = copy.deepcopy(ev.data)
        out["@odata.etag"] = f'W/"{ev.data["changeKey"]}"'
        start_zone = tz_pref or ev.start_zone
        end_zone = tz_pref or ev.end_zone
        out["start"] = {"dateTime": format_local(ev.start_utc, start_zone), "timeZone": start_zone}
        out["end"] = {"dateTime": format_local(ev.end_utc, end_zone), "timeZone": end_zone}
        if expand and ev.ext_props:
            wanted = {i.lower() for i in expand} if isinstance(expand, set) else None
            props = [{"id": k, "value": v} for k, v in ev.ext_props.items() if wanted is None or k.lower() in wanted]
            if props:
                out["singleValueExtendedProperties"] = props
        return out

    # ---------------------------------------------------------------- event mutation (shared)
    def _apply_fields(self, ev: _Event, fields: dict[str, Any]) -> None:
        """Apply Graph-JSON fields (as a REST body or mapped from helper keywords) to an event."""
        data = ev.data
        for key, value in fields.items():
            if key in ("start", "end"):
                if not isinstance(value, dict) or "dateTime" not in value:
                    raise GraphError(400, "RequestBodyRead", f"Invalid '{key}': expected dateTime and timeZone.")
                zone_name = str(value.get("timeZone") or "UTC")
                try:
                    zone(zone_name)
                    when = parse_datetime(str(value["dateTime"]), zone_name)
                except KeyError:
                    raise GraphError(
                        400,
                        "TimeZoneNotSupportedException",
                        "A valid TimeZone value must be specified. "
                        f"The following TimeZone value is not supported: '{zone_name}'.",
                    ) from None
                except ValueError:
                    raise GraphError(
                        400, "RequestBodyRead", f"Cannot convert the literal '{value['dateTime']}' to DateTimeOffset."
                    ) from None
                if key == "start":
                    ev.start_utc, ev.start_zone = when, zone_name
                    data["originalStartTimeZone"] = zone_name
                else:
                    ev.end_utc, ev.end_zone = when, zone_name
                    data["originalEndTimeZone"] = zone_name
            elif key == "body":
                if isinstance(value, str):
                    value = {"contentType": "text", "content": value}
                content = str((value or {}).get("content") or "")
                data["body"] = {"contentType": (value or {}).get("contentType", "text"), "content": content}
                text = re.sub(r"<[^>]*>", "", content) if data["body"]["contentType"].lower() == "html" else content
                data["bodyPreview"] = re.sub(r"\s+", " ", text).strip()[:255]
            elif key == "location":
                data["location"] = {"displayName": value} if isinstance(value, str) else dict(value or {})
            elif key == "singleValueExtendedProperties":
                for prop in value or []:
                    ev.ext_props[str(prop["id"])] = str(prop.get("value"))
            elif key in ("showAs", "sensitivity", "importance", "type"):
                allowed = {
                    "showAs": SHOW_AS,
                    "sensitivity": SENSITIVITY,
                    "importance": IMPORTANCE,
                    "type": EVENT_TYPES,
                }[key]
                if value not in allowed:
                    raise GraphError(400, "RequestBodyRead", f"Requested value '{value}' was not found.")
                data[key] = value
            elif key == "categories":
                data["categories"] = list(value or [])
            elif key in ("id", "changeKey", "@odata.etag", "createdDateTime", "lastModifiedDateTime") and "id" in data:
                continue  # read-only once the event exists
            else:
                data[key] = copy.deepcopy(value)
        if ev.end_utc < ev.start_utc:
            raise GraphError(400, "ErrorInvalidRequest", "The end date must be after the start date.")

    def _touch(self, ev: _Event) -> None:
        ev.data["changeKey"] = self._new_change_key()
        ev.data["lastModifiedDateTime"] = format_utc(self._clock())
        ev.seq = self._next_seq()

    def _create(self, mailbox: str, fields: dict[str, Any], event_id: str | None = None) -> _Event:
        """Create an event from Graph-JSON fields. Caller holds the lock."""
        now = self._clock()
        eid = event_id or self.new_event_id()
        if eid in self._events[mailbox]:
            raise GraphError(409, "ErrorDuplicateItem", f"An event with id '{eid}' already exists.")
        data: dict[str, Any] = {
            "id": eid,
            "createdDateTime": format_utc(now),
            "lastModifiedDateTime": format_utc(now),
            "changeKey": "",
            "categories": [],
            "transactionId": None,
            "originalStartTimeZone": "UTC",
            "originalEndTimeZone": "UTC",
            "iCalUId": "040000008200E00074C5B7101A82E00800000000"
            + uuid.UUID(int=self._rng.getrandbits(128)).hex.upper(),
            "reminderMinutesBeforeStart": 15,
            "isReminderOn": True,
            "hasAttachments": False,
            "subject": "",
            "bodyPreview": "",
            "importance": "normal",
            "sensitivity": "normal",
            "isAllDay": False,
            "isCancelled": False,
            "isOrganizer": True,
            "responseRequested": True,
            "seriesMasterId": None,
            "showAs": "busy",
            "type": "singleInstance",
            "body": {"contentType": "text", "content": ""},
            "location": {"displayName": ""},
            "attendees": [],
            "organizer": {
                "emailAddress": {
                    "name": self._users[mailbox]["displayName"],
                    "address": self._users[mailbox]["mail"] or self._users[mailbox]["userPrincipalName"],
                }
            },
        }
        ev = _Event(mailbox, data, now, now + timedelta(minutes=30), "UTC", "UTC")
        self._apply_fields(ev, fields)
        self._touch(ev)
        self._events[mailbox][eid] = ev
        self._tombstones[mailbox].pop(eid, None)
        self._changed(ev.mailbox, eid, "created")
        return ev

    def _update(self, ev: _Event, fields: dict[str, Any]) -> None:
        backup = (copy.deepcopy(ev.data), ev.start_utc, ev.end_utc, ev.start_zone, ev.end_zone, dict(ev.ext_props))
        try:
            self._apply_fields(ev, fields)
        except GraphError:
            ev.data, ev.start_utc, ev.end_utc, ev.start_zone, ev.end_zone, ev.ext_props = backup
            raise
        self._touch(ev)
        self._changed(ev.mailbox, ev.id, "updated")

    def _delete(self, ev: _Event) -> None:
        del self._events[ev.mailbox][ev.id]
        self._tombstones[ev.mailbox][ev.id] = self._next_seq()
        self._changed(ev.mailbox, ev.id, "deleted")

    @staticmethod
    def _helper_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
        """Helper keyword names → Graph JSON fields (unknown keywords pass through verbatim)."""
        names = {
            "subject": "subject",
            "show_as": "showAs",
            "sensitivity": "sensitivity",
            "importance": "importance",
            "is_all_day": "isAllDay",
            "categories": "categories",
            "is_cancelled": "isCancelled",
            "event_type": "type",
            "body": "body",
            "location": "location",
            "i_cal_uid": "iCalUId",
            "transaction_id": "transactionId",
        }
        fields: dict[str, Any] = {}
        tz = kwargs.pop("time_zone", None)
        for edge in ("start", "end"):
            if edge in kwargs:
                value = kwargs.pop(edge)
                zone_name = tz or "UTC"
                if isinstance(value, datetime):
                    if value.tzinfo is not None:
                        value = value.astimezone(zone(zone_name)).replace(tzinfo=None)
                    value = value.isoformat()
                fields[edge] = {"dateTime": value, "timeZone": zone_name}
        props = kwargs.pop("extended_properties", None)
        if props:
            fields["singleValueExtendedProperties"] = [{"id": k, "value": v} for k, v in props.items()]
        for key, value in kwargs.items():
            if key == "categories":
                value = list(value)
            fields[names.get(key, key)] = value
        return fields

    # ---------------------------------------------------------------- event helpers (public)
    def create_event(
        self,
        mailbox_id: str,
        subject: str = "Meeting",
        start: str | datetime = "2026-11-23T09:00:00",
        end: str | datetime = "2026-11-23T10:00:00",
        show_as: str = "busy",
        sensitivity: str = "normal",
        importance: str = "normal",
        is_all_day: bool = False,
        body: str = "",
        categories: Iterable[str] = (),
        is_cancelled: bool = False,
        event_type: str = "singleInstance",
        time_zone: str = "UTC",
        **extra: Any,
    ) -> dict[str, Any]:
        """Create an event as if the user made it in Outlook (notifies when ``auto_notify``).

        ``start``/``end`` are local times in ``time_zone`` (aware datetimes are converted).
        Extras: ``id`` (force an id, e.g. one containing '/' or '+'), ``location``,
        ``i_cal_uid``, ``extended_properties`` ({property id: value}), ``transaction_id``, or any
        Graph JSON field verbatim. An unknown ``mailbox_id`` is registered on the fly (as UPN if
        it contains '@', else as object id).
        """
        event_id = extra.pop("id", None)
        fields = self._helper_fields(
            dict(
                subject=subject,
                start=start,
                end=end,
                show_as=show_as,
                sensitivity=sensitivity,
                importance=importance,
                is_all_day=is_all_day,
                body=body,
                categories=categories,
                is_cancelled=is_cancelled,
                event_type=event_type,
                time_zone=time_zone,
                **extra,
            )
        )
        with self._lock:
            mailbox = self._mailbox(mailbox_id, create=True)
            ev = self._create(mailbox, fields, event_id)
            result = self._render(ev, expand=True)
        self._wake.set()
        return result

    def update_event(self, mailbox_id: str, event_id: str, **changes: Any) -> dict[str, Any]:
        """Edit an event (same keyword names as ``create_event``): new changeKey and
        lastModifiedDateTime every time. ``KeyError`` if it does not exist."""
        if "start" in changes or "end" in changes:
            with self._lock:
                ev = self._require(mailbox_id, event_id)
                changes.setdefault("time_zone", ev.start_zone)
        fields = self._helper_fields(dict(changes))
        with self._lock:
            ev = self._require(mailbox_id, event_id)
            self._update(ev, fields)
            result = self._render(ev, expand=True)
        self._wake.set()
        return result

    def delete_event(self, mailbox_id: str, event_id: str) -> None:
        """Delete an event (``KeyError`` if it does not exist); delta reports it ``@removed``."""
        with self._lock:
            self._delete(self._require(mailbox_id, event_id))
        self._wake.set()

    def get_event(self, mailbox_id: str, event_id: str) -> dict[str, Any] | None:
        """The stored event (own time zone, extended properties included), or None."""
        with self._lock:
            try:
                return self._render(self._require(mailbox_id, event_id), expand=True)
            except KeyError:
                return None

    def events(self, mailbox_id: str) -> list[dict[str, Any]]:
        """All events of a mailbox, in creation order."""
        with self._lock:
            mailbox = self._mailbox_or_key_error(mailbox_id)
            return [self._render(ev, expand=True) for ev in self._events[mailbox].values()]

    def _mailbox_or_key_error(self, mailbox_id: str) -> str:
        user = self._find_user(mailbox_id)
        if user is None:
            raise KeyError(mailbox_id)
        return str(user["id"])

    def _require(self, mailbox_id: str, event_id: str) -> _Event:
        mailbox = self._mailbox_or_key_error(mailbox_id)
        ev = self._events[mailbox].get(event_id)
        if ev is None:
            raise KeyError(event_id)
        return ev

    # ---------------------------------------------------------------- faults & accounting
    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        retry_after: int | None = 1,
        path_contains: str | None = None,
        code: str | None = None,
    ) -> None:
        """The next ``count`` requests (or ``$batch`` members) whose path contains
        ``path_contains`` answer ``status`` with a Graph error (and ``Retry-After`` for
        429/503/504 unless ``retry_after`` is None)."""
        self._faults.add_fault(count, status, retry_after, path_contains, code)

    def delay_next(self, seconds: float, count: int = 1, path_contains: str | None = None) -> None:
        """Answer the next ``count`` matching requests only after ``seconds`` (latency, timeouts)."""
        self._faults.add_delay(seconds, count, path_contains)

    def fault_rate(
        self,
        rate: float,
        statuses: Iterable[int] = (429, 503),
        seed: int | None = None,
        retry_after: int | None = 1,
    ) -> None:
        """Random faults on every request and batch member with probability ``rate`` (0 = off).
        msgraph treats ``Retry-After: 0`` as absent and backs off seconds, hence 1 by default."""
        self._faults.set_rate(rate, statuses, seed, retry_after)

    def clear_faults(self) -> None:
        self._faults.clear()

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.batch_members.clear()
            self.deliveries.clear()

    # ---------------------------------------------------------------- HTTP entry points
    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(RecordedRequest.of(request))
        auth = request.headers.get("authorization", "")
        if not re.match(r"(?i)^bearer\s+\S+", auth):
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        segments = request.segments
        if not segments or segments[0].lower() != "v1.0":
            return graph_error(400, "BadRequest", "Invalid version.")
        return self._serve(request, segments[1:], member=False)

    def _serve(self, request: Request, segments: list[str], *, member: bool) -> Response:
        """Delay, fault, then route. Shared by top-level requests and ``$batch`` members."""
        self.sleep(self._faults.take_delay(request.path, request.raw_target))
        fault = self._faults.take_fault(request.path, request.raw_target)
        if fault is not None:
            return self._fault_response(fault)
        try:
            return self._route(request, segments, member=member)
        except GraphError as err:
            return err.response()

    @staticmethod
    def _fault_response(fault: Any) -> Response:
        codes = {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout", 500: "UnknownError"}
        messages = {
            429: "Application is over its MailboxConcurrency limit.",
            503: "The service is temporarily unavailable. Please try again later.",
            504: "The gateway timed out.",
        }
        headers = {}
        if fault.retry_after is not None and fault.status in (429, 503, 504):
            headers["Retry-After"] = str(fault.retry_after)
        return graph_error(
            fault.status,
            fault.code or codes.get(fault.status, "UnknownError"),
            messages.get(fault.status, "Injected fault."),
            headers,
        )

    def _route(self, request: Request, segs: list[str], *, member: bool) -> Response:
        # OData functions may be called with parentheses (msgraph-sdk sends ".../delta()")
        low = [s.lower().removesuffix("()") for s in segs]
        method = request.method
        if low == ["$batch"]:
            if member:
                raise GraphError(400, "BadRequest", "Nested batch requests are not supported.")
            if method != "POST":
                raise GraphError(405, "MethodNotAllowed", "Only POST is allowed on $batch.")
            return self._batch(request)
        if low and low[0] == "subscriptions":
            return self._route_subscriptions(request, segs[1:])
        if low and low[0] == "users" and len(segs) >= 2:
            user_ref, rest, rest_low = segs[1], segs[2:], low[2:]
            if not rest:
                if method != "GET":
                    raise GraphError(405, "MethodNotAllowed", "Method not allowed.")
                return self._get_user(request, user_ref)
            if rest_low[:1] == ["calendar"] and rest_low[1:2] == ["events"]:
                rest, rest_low = rest[1:], rest_low[1:]  # /calendar/events aliases /events
            if rest_low == ["calendarview", "delta"] and method == "GET":
                return self._delta(request, user_ref)
            if rest_low == ["calendarview"] and method == "GET":
                return self._calendar_view(request, user_ref)
            if rest_low[:1] == ["events"]:
                if len(rest) == 1:
                    if method == "POST":
                        return self._post_event(request, user_ref)
                    if method == "GET":
                        return self._list_events(request, user_ref)
                elif len(rest) == 2:
                    if method == "GET":
                        return self._get_event(request, user_ref, rest[1])
                    if method == "PATCH":
                        return self._patch_event(request, user_ref, rest[1])
                    if method == "DELETE":
                        return self._delete_event(request, user_ref, rest[1])
                raise GraphError(405, "MethodNotAllowed", "Method not allowed.")
        segment = segs[-1] if segs else ""
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    # ---------------------------------------------------------------- users & events (REST)
    def _get_user(self, request: Request, user_ref: str) -> Response:
        with self._lock:
            user = self._find_user(user_ref)
            if user is None:
                raise GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{user_ref}' does not exist or one of its queried reference-property objects "
                    "are not present.",
                )
            body: dict[str, Any] = {"@odata.context": f"{self.base_url}/$metadata#users/$entity"}
            select = [s.strip() for s in request.query.get("$select", "").split(",") if s.strip()]
            if select:
                lowered = {k.lower(): k for k in user}
                body["id"] = user["id"]
                for name in select:
                    if name.lower() in lowered:
                        body[lowered[name.lower()]] = user[lowered[name.lower()]]
            else:
                body.update(user)
            return Response(200, body)

    @staticmethod
    def _tz_pref(request: Request) -> str | None:
        tz = parse_prefer(request.headers).get("outlook.timezone")
        if tz is None:
            return None
        try:
            zone(tz)
        except KeyError:
            raise GraphError(
                400, "TimeZoneNotSupportedException", f"The following TimeZone value is not supported: '{tz}'."
            ) from None
        return tz

    @staticmethod
    def _expand(request: Request) -> set[str] | bool:
        expand = request.query.get("$expand", "")
        if "singlevalueextendedproperties" not in expand.lower():
            return False
        ids = set(re.findall(r"(?i)id\s+eq\s+'([^']*)'", expand))
        return ids or True

    def _event_or_404(self, mailbox: str, event_id: str) -> _Event:
        ev = self._events[mailbox].get(event_id)
        if ev is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return ev

    def _get_event(self, request: Request, user_ref: str, event_id: str) -> Response:
        tz, expand = self._tz_pref(request), self._expand(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            ev = self._event_or_404(mailbox, event_id)
            body = {"@odata.context": f"{self.base_url}/$metadata#users('{user_ref}')/events/$entity"}
            body.update(self._render(ev, tz, expand))
            return Response(200, body, self._etag_header(ev))

    @staticmethod
    def _etag_header(ev: _Event) -> dict[str, str]:
        return {"ETag": f'W/"{ev.data["changeKey"]}"'}

    def _list_events(self, request: Request, user_ref: str) -> Response:
        tz, expand = self._tz_pref(request), self._expand(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            value = [self._render(ev, tz, expand) for ev in self._events[mailbox].values()]
        return Response(
            200, {"@odata.context": f"{self.base_url}/$metadata#users('{user_ref}')/events", "value": value}
        )

    def _calendar_view(self, request: Request, user_ref: str) -> Response:
        start, end = self._window(request)
        tz = self._tz_pref(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            value = [self._render(ev, tz) for ev in self._events[mailbox].values() if ev.overlaps(start, end)]
        return Response(200, {"@odata.context": f"{self.base_url}/$metadata#Collection(event)", "value": value})

    def _post_event(self, request: Request, user_ref: str) -> Response:
        body = request.json
        if not isinstance(body, dict):
            raise GraphError(400, "RequestBodyRead", "Empty or invalid payload.")
        if "start" not in body or "end" not in body:
            raise GraphError(400, "ErrorInvalidRequest", "Start and End are required.")
        tz = self._tz_pref(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            tx = body.get("transactionId")
            if tx:
                existing_id = self._transactions.get((mailbox, str(tx)))
                existing = self._events[mailbox].get(existing_id) if existing_id else None
                if existing is not None:  # Graph drops the duplicate create
                    return Response(201, self._render(existing, tz), self._etag_header(existing))
            fields = {k: v for k, v in body.items() if not k.startswith("@odata")}
            ev = self._create(mailbox, fields)
            if tx:
                self._transactions[(mailbox, str(tx))] = ev.id
            result = self._render(ev, tz)
        self._wake.set()
        return Response(201, result, self._etag_header(ev))

    def _patch_event(self, request: Request, user_ref: str, event_id: str) -> Response:
        body = request.json
        if not isinstance(body, dict):
            raise GraphError(400, "RequestBodyRead", "Empty or invalid payload.")
        tz = self._tz_pref(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            ev = self._event_or_404(mailbox, event_id)
            self._update(ev, {k: v for k, v in body.items() if not k.startswith("@odata")})
            result = self._render(ev, tz)
        self._wake.set()
        return Response(200, result, self._etag_header(ev))

    def _delete_event(self, request: Request, user_ref: str, event_id: str) -> Response:
        with self._lock:
            mailbox = self._mailbox(user_ref)
            self._delete(self._event_or_404(mailbox, event_id))
        self._wake.set()
        return Response(204)

    # ---------------------------------------------------------------- delta
    @staticmethod
    def _window(request: Request) -> tuple[datetime, datetime]:
        try:
            start = parse_datetime(request.query["startDateTime"])
            end = parse_datetime(request.query["endDateTime"])
        except KeyError:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            ) from None
        except ValueError:
            raise GraphError(
                400, "ErrorInvalidParameter", "The value of StartDateTime or EndDateTime is not a valid date-time."
            ) from None
        return start, end

    def _delta_link(self, user_ref: str, kind: str, token: str) -> str:
        return f"{self.base_url}/users/{quote(user_ref, safe='@')}/calendarView/delta?{kind}={token}"

    def expire_delta_tokens(self, mailbox_id: str | None = None, *, resync_required: bool = False) -> int:
        """Expire every outstanding delta and skip token (of one mailbox, or all). Their next use
        answers 410 Gone + ``Location`` + ``syncStateNotFound``, or with ``resync_required`` 400
        ``resyncRequired`` (both occur). Returns how many tokens were expired."""
        mode = "resync" if resync_required else "gone"
        with self._lock:
            mailbox = self._mailbox_or_key_error(mailbox_id) if mailbox_id else None
            tokens = list(self._delta_tokens.values()) + [r.token for r, _, _ in self._skip_tokens.values()]
            hit = 0
            for tok in tokens:
                if mailbox is None or tok.mailbox == mailbox:
                    tok.expired, hit = mode, hit + 1
            return hit

    def _expired_response(self, tok: _DeltaToken | None, user_ref: str, mode: str) -> Response:
        if mode == "resync":
            return graph_error(
                400,
                "resyncRequired",
                "Resync required. Replace any local cached copy with the latest version from the server.",
            )
        headers = {}
        if tok is not None:
            ws, we = tok.window
            headers["Location"] = (
                f"{self.base_url}/users/{quote(user_ref, safe='@')}/calendarView/delta"
                f"?startDateTime={quote(format_utc(ws))}&endDateTime={quote(format_utc(we))}"
            )
        return graph_error(410, "syncStateNotFound", "The sync state generation is not found.", headers)

    def _delta(self, request: Request, user_ref: str) -> Response:
        bad = sorted(k for k in request.query if k.lower() in ("$select", "$filter", "$expand", "$orderby", "$search"))
        if bad:
            raise GraphError(
                400,
                "ErrorInvalidUrlQuery",
                "The following parameters are not supported with change tracking over the 'CalendarView' "
                f"resource: '{', '.join(bad)}'.",
            )
        prefer = parse_prefer(request.headers)
        tz = self._tz_pref(request)
        try:
            page_size = max(1, int(prefer.get("odata.maxpagesize", DEFAULT_PAGE_SIZE)))
        except ValueError:
            page_size = DEFAULT_PAGE_SIZE
        skip = request.query.get("$skiptoken")
        delta = request.query.get("$deltatoken")
        with self._lock:
            mailbox = self._mailbox(user_ref)
            if skip is not None:
                entry = self._skip_tokens.get(skip)
                if entry is None or entry[0].token.mailbox != mailbox:
                    return self._expired_response(None, user_ref, "gone")
                rnd, offset, _ = entry
                if rnd.token.expired:
                    return self._expired_response(rnd.token, user_ref, rnd.token.expired)
                return self._delta_page(rnd, offset, page_size, tz)
            if delta is not None:
                tok = self._delta_tokens.get(delta)
                if tok is None or tok.mailbox != mailbox:
                    return self._expired_response(None, user_ref, "gone")
                if tok.expired:
                    return self._expired_response(tok, user_ref, tok.expired)
                rnd = self._delta_round(mailbox, user_ref, tok.window, since=tok.seq)
            else:
                rnd = self._delta_round(mailbox, user_ref, self._window(request), since=None)
            return self._delta_page(rnd, 0, page_size, tz)

    def _delta_round(
        self, mailbox: str, user_ref: str, window: tuple[datetime, datetime], since: int | None
    ) -> _DeltaRound:
        """Snapshot what a round reports. First round: events overlapping the window. Later
        rounds: events changed since the token (outside the window → ``@removed``) and deletions."""
        ws, we = window
        items: list[tuple[str, str]] = []
        for ev in sorted(self._events[mailbox].values(), key=lambda e: e.seq):
            if since is None:
                if ev.overlaps(ws, we):
                    items.append((ev.id, "event"))
            elif ev.seq > since:
                items.append((ev.id, "event" if ev.overlaps(ws, we) else "removed"))
        if since is not None:
            for eid, seq in sorted(self._tombstones[mailbox].items(), key=lambda kv: kv[1]):
                if seq > since:
                    items.append((eid, "removed"))
        return _DeltaRound(_DeltaToken(mailbox, user_ref, window, self._seq), items)

    def _delta_page(self, rnd: _DeltaRound, offset: int, page_size: int, tz: str | None) -> Response:
        ws, we = rnd.token.window
        value: list[dict[str, Any]] = []
        for eid, kind in rnd.items[offset : offset + page_size]:
            ev = self._events[rnd.token.mailbox].get(eid)
            if kind == "event" and ev is not None and ev.overlaps(ws, we):
                value.append(self._render(ev, tz))
            else:
                value.append({"@odata.type": "#microsoft.graph.event", "id": eid, "@removed": {"reason": "deleted"}})
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/$metadata#Collection(event)", "value": value}
        next_offset = offset + page_size
        if next_offset < len(rnd.items):
            token = self._new_token()
            self._skip_tokens[token] = (rnd, next_offset, page_size)
            body["@odata.nextLink"] = self._delta_link(rnd.token.user_ref, "$skiptoken", token)
        else:
            token = self._new_token()
            self._delta_tokens[token] = rnd.token
            body["@odata.deltaLink"] = self._delta_link(rnd.token.user_ref, "$deltatoken", token)
        return Response(200, body)

    # ---------------------------------------------------------------- $batch
    def _batch(self, request: Request) -> Response:
        body = request.json
        members = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(members, list) or not members:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(members) > MAX_BATCH:
            raise GraphError(400, "BadRequest", f"Limit of {MAX_BATCH} requests exceeded.")
        ids = [str(m.get("id")) for m in members if isinstance(m, dict)]
        if len(ids) != len(members) or len(set(ids)) != len(ids) or any(i in ("", "None") for i in ids):
            raise GraphError(400, "BadRequest", "Each batch member needs a unique id.")
        responses = []
        for member in members:
            responses.append(self._batch_member(request, member))
        return Response(200, {"responses": responses})

    def _batch_member(self, envelope: Request, member: dict[str, Any]) -> dict[str, Any]:
        url = str(member.get("url") or "")
        if url.lower().startswith(("http://", "https://")):
            parts = urlsplit(url)
            url = parts.path + (f"?{parts.query}" if parts.query else "")
            if url.lower().startswith("/v1.0"):
                url = url[5:]
        if not url.startswith("/"):
            url = "/" + url
        headers = {"authorization": envelope.headers.get("authorization", "")}
        headers.update({str(k).lower(): str(v) for k, v in (member.get("headers") or {}).items()})
        raw_body = member.get("body")
        data = json.dumps(raw_body).encode("utf-8") if raw_body is not None else b""
        sub = Request.parse(str(member.get("method") or "GET"), "/v1.0" + url, headers, data)
        with self._lock:
            self.batch_members.append(RecordedRequest.of(sub))
        resp = self._serve(sub, sub.segments[1:], member=True)
        out: dict[str, Any] = {"id": str(member.get("id")), "status": resp.status}
        out_headers = dict(resp.headers)
        if resp.body is not None and "Content-Type" not in out_headers:
            out_headers["Content-Type"] = "application/json" if isinstance(resp.body, (dict, list)) else "text/plain"
        out["headers"] = out_headers
        if resp.body is not None:
            out["body"] = resp.body
        return out

    # ---------------------------------------------------------------- subscriptions (REST)
    def _route_subscriptions(self, request: Request, rest: list[str]) -> Response:
        method = request.method
        if not rest:
            if method == "POST":
                return self._create_subscription(request)
            if method == "GET":
                with self._lock:
                    self._purge_expired()
                    value = [copy.deepcopy(s.json) for s in self._subscriptions.values()]
                return Response(200, {"@odata.context": f"{self.base_url}/$metadata#subscriptions", "value": value})
        elif len(rest) == 1:
            if method == "GET":
                with self._lock:
                    return Response(200, copy.deepcopy(self._subscription_or_404(rest[0]).json))
            if method == "PATCH":
                return self._patch_subscription(request, rest[0])
            if method == "DELETE":
                with self._lock:
                    self._subscription_or_404(rest[0])
                    del self._subscriptions[rest[0]]
                return Response(204)
        elif len(rest) == 2 and rest[1].lower() == "reauthorize" and method == "POST":
            with self._lock:
                self._subscription_or_404(rest[0]).reauthorizations += 1
            return Response(204)
        raise GraphError(405, "MethodNotAllowed", "Method not allowed.")

    def _purge_expired(self) -> None:
        """Graph deletes subscriptions once they expire."""
        now = self._clock()
        for sid, sub in list(self._subscriptions.items()):
            if parse_datetime(sub.json["expirationDateTime"]) <= now:
                del self._subscriptions[sid]

    def _subscription_or_404(self, sub_id: str) -> _Subscription:
        self._purge_expired()
        sub = self._subscriptions.get(sub_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription Id '{sub_id}'.")
        return sub

    def _expiration(self, value: Any) -> datetime:
        try:
            when = parse_datetime(str(value))
        except (ValueError, KeyError):
            raise GraphError(400, "InvalidRequest", "expirationDateTime is not a valid date-time.") from None
        now = self._clock()
        if when <= now:
            raise GraphError(400, "InvalidRequest", "Subscription expiration can only be in the future.")
        if when > now + timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
            raise GraphError(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future.",
            )
        return max(when, now + timedelta(minutes=MIN_SUBSCRIPTION_MINUTES))

    def _resource_mailbox(self, resource: str) -> str:
        parts = [p for p in resource.strip().split("/") if p]
        low = [p.lower() for p in parts]
        if (
            len(parts) in (3, 4)
            and low[0] == "users"
            and low[-1] == "events"
            and (len(parts) == 3 or low[2] == "calendar")
        ):
            user = self._find_user(parts[1])
            if user is None:
                raise GraphError(
                    400,
                    "ExtensionError",
                    "Operation: Create; Exception: [Status Code: NotFound; Reason: The mailbox is either "
                    "inactive, soft-deleted, or is hosted on-premise.]",
                )
            return str(user["id"])
        raise GraphError(400, "InvalidRequest", f"Resource '{resource}' is not supported by this fake.")

    def _create_subscription(self, request: Request) -> Response:
        body = request.json
        if not isinstance(body, dict):
            raise GraphError(400, "InvalidRequest", "Empty or invalid payload.")
        for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(required):
                raise GraphError(400, "InvalidRequest", f"Required field '{required}' is missing.")
        change_types = frozenset(c.strip() for c in str(body["changeType"]).split(",") if c.strip())
        if not change_types or not change_types <= set(CHANGE_TYPES):
            raise GraphError(400, "InvalidRequest", f"Invalid changeType '{body['changeType']}'.")
        client_state = body.get("clientState")
        if client_state is not None and len(str(client_state)) > 128:
            raise GraphError(400, "InvalidRequest", "clientState can be at most 128 characters.")
        expiration = self._expiration(body["expirationDateTime"])
        with self._lock:
            mailbox = self._resource_mailbox(str(body["resource"]))
            self._check_conflict(mailbox, change_types)
        for url in (body["notificationUrl"], body.get("lifecycleNotificationUrl")):
            if url and not self._validate_endpoint(str(url)):
                raise GraphError(
                    400,
                    "ValidationError",
                    "Subscription validation request failed. Notification endpoint must respond with "
                    "200 OK to validation request.",
                )
        with self._lock:
            self._check_conflict(mailbox, change_types)
            sub_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            sub_json = {
                "@odata.context": f"{self.base_url}/$metadata#subscriptions/$entity",
                "id": sub_id,
                "resource": body["resource"],
                "applicationId": self.application_id,
                "changeType": body["changeType"],
                "clientState": client_state,
                "notificationUrl": body["notificationUrl"],
                "notificationQueryOptions": None,
                "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
                "expirationDateTime": format_utc(expiration),
                "creatorId": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                "includeResourceData": False,
                "latestSupportedTlsVersion": "v1_2",
                "encryptionCertificate": None,
                "encryptionCertificateId": None,
                "notificationUrlAppId": None,
            }
            immutable = parse_prefer(request.headers).get("idtype", "").lower() == "immutableid"
            self._subscriptions[sub_id] = _Subscription(sub_json, mailbox, change_types, immutable)
            return Response(201, copy.deepcopy(sub_json))

    def _check_conflict(self, mailbox: str, change_types: frozenset[str]) -> None:
        self._purge_expired()
        for sub in self._subscriptions.values():
            if sub.mailbox == mailbox and sub.change_types == change_types:
                raise GraphError(
                    409,
                    "Conflict",
                    f"A subscription for this resource and changeType already exists (id {sub.json['id']}).",
                )

    def _validation_token(self) -> str:
        """Opaque, hostile-looking: spaces, '+', '/', '<', non-ASCII (receivers must decode and
        echo it as text/plain, never as HTML)."""
        rid = uuid.UUID(int=self._rng.getrandbits(128), version=4)
        return f"Validation: Testing client application reachability for subscription Request-Id: {rid} a+b/c <i>é✓</i>"

    def _validate_endpoint(self, url: str) -> bool:
        token = self._validation_token()
        sep = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
        target = f"{url}{sep}validationToken={quote(token, safe='')}"
        status = 0
        ok = False
        try:
            resp = httpx.post(target, content=b"", timeout=self.validation_timeout)
            status = resp.status_code
            ctype = resp.headers.get("content-type", "").lower()
            ok = status == 200 and ctype.startswith("text/plain") and resp.text == token
        except httpx.HTTPError:
            ok = False
        with self._lock:
            self.deliveries.append(Delivery("validation", target, token, status))
        return ok

    def _patch_subscription(self, request: Request, sub_id: str) -> Response:
        body = request.json
        if not isinstance(body, dict) or not body.get("expirationDateTime"):
            raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
        expiration = self._expiration(body["expirationDateTime"])
        with self._lock:
            sub = self._subscription_or_404(sub_id)
            sub.json["expirationDateTime"] = format_utc(expiration)
            return Response(200, copy.deepcopy(sub.json))

    # ---------------------------------------------------------------- subscriptions (helpers)
    def subscriptions(self) -> list[dict[str, Any]]:
        """Live subscriptions as Graph returns them (copies)."""
        with self._lock:
            self._purge_expired()
            return [copy.deepcopy(s.json) for s in self._subscriptions.values()]

    def subscription_used_immutable_ids(self, subscription_id: str) -> bool:
        """Whether the create request carried ``Prefer: IdType="ImmutableId"``."""
        with self._lock:
            return self._subscriptions[subscription_id].immutable_ids

    def subscription_reauthorizations(self, subscription_id: str) -> int:
        with self._lock:
            return self._subscriptions[subscription_id].reauthorizations

    def remove_subscription(self, subscription_id: str) -> None:
        """Graph dropped it (no lifecycle notification; see ``send_lifecycle`` for that)."""
        with self._lock:
            self._subscriptions.pop(subscription_id, None)

    # ---------------------------------------------------------------- notifications out
    def _notification(self, sub: _Subscription, event_id: str, change_type: str, etag: str | None) -> dict[str, Any]:
        user_ref = sub.mailbox
        resource = f"Users/{user_ref}/Events/{event_id}"
        data: dict[str, Any] = {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource}
        if etag is not None:
            data["@odata.etag"] = etag
        data["id"] = event_id
        note: dict[str, Any] = {
            "subscriptionId": sub.json["id"],
            "subscriptionExpirationDateTime": format_offset(parse_datetime(sub.json["expirationDateTime"])),
            "changeType": change_type,
            "resource": resource,
            "resourceData": data,
            "tenantId": self.tenant_id,
        }
        if sub.json.get("clientState") is not None:
            note["clientState"] = sub.json["clientState"]
        return note

    def _targets(self, mailbox: str, event_id: str, change_type: str) -> list[_Outgoing]:
        """Notifications for one change, one per matching subscription. Caller holds the lock."""
        self._purge_expired()
        ev = self._events.get(mailbox, {}).get(event_id)
        etag = f'W/"{ev.data["changeKey"]}"' if ev is not None and change_type != "deleted" else None
        return [
            _Outgoing(str(sub.json["notificationUrl"]), self._notification(sub, event_id, change_type, etag))
            for sub in self._subscriptions.values()
            if sub.mailbox == mailbox and change_type in sub.change_types
        ]

    def _changed(self, mailbox: str, event_id: str, change_type: str) -> None:
        """Hook called under the lock on every change: queue auto-notifications."""
        if not self.auto_notify:
            return
        if self.notify_drop_rate > 0 and self._notify_rng.random() < self.notify_drop_rate:
            return
        for out in self._targets(mailbox, event_id, change_type):
            for _ in range(max(1, self.notify_duplicates)):
                self._outbox.append(_Outgoing(out.url, copy.deepcopy(out.notification)))

    def pending_notifications(self) -> list[dict[str, Any]]:
        """What ``flush_notifications`` would send (copies, unshuffled)."""
        with self._lock:
            return [copy.deepcopy(o.notification) for o in self._outbox]

    def notify(self, mailbox_id: str, event_id: str, change_type: str) -> list[int]:
        """Send one change notification now to every matching subscription (exactly once each,
        bypassing duplicates/drops). Returns the receivers' HTTP statuses (0 = unreachable)."""
        if change_type not in CHANGE_TYPES:
            raise ValueError(change_type)
        with self._lock:
            targets = self._targets(self._mailbox_or_key_error(mailbox_id), event_id, change_type)
        return [self._post("notification", o.url, {"value": [o.notification]}) for o in targets]

    def flush_notifications(self) -> list[int]:
        """Send everything in the outbox now (shuffled if ``notify_reorder``; grouped per URL in
        POSTs of ``notify_batch_size``). Returns the HTTP statuses, one per POST."""
        with self._lock:
            pending, self._outbox = self._outbox, []
            if self.notify_reorder:
                self._notify_rng.shuffle(pending)
            size = max(1, self.notify_batch_size)
        posts: list[tuple[str, list[dict[str, Any]]]] = []
        for out in pending:
            if posts and posts[-1][0] == out.url and len(posts[-1][1]) < size:
                posts[-1][1].append(out.notification)
            else:
                posts.append((out.url, [out.notification]))
        return [self._post("notification", url, {"value": notes}) for url, notes in posts]

    def send_lifecycle(self, subscription_id: str, event: str) -> int:
        """Post a lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``,
        ``missed``) to the subscription's lifecycleNotificationUrl. ``subscriptionRemoved`` also
        removes the subscription, as Graph does. Returns the receiver's status."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(event)
        with self._lock:
            sub = self._subscriptions[subscription_id]
            url = sub.json.get("lifecycleNotificationUrl")
            if not url:
                raise ValueError(f"subscription {subscription_id} has no lifecycleNotificationUrl")
            note: dict[str, Any] = {
                "subscriptionId": subscription_id,
                "subscriptionExpirationDateTime": format_offset(parse_datetime(sub.json["expirationDateTime"])),
                "tenantId": self.tenant_id,
                "organizationId": self.tenant_id,
                "clientState": sub.json.get("clientState"),
                "lifecycleEvent": event,
                "resource": sub.json["resource"],
            }
            if event == "subscriptionRemoved":
                del self._subscriptions[subscription_id]
        return self._post("lifecycle", str(url), {"value": [note]})

    def _post(self, kind: str, url: str, payload: Any) -> int:
        """POST JSON to a receiver with Graph's 10 s timeout; never raises."""
        try:
            status = httpx.post(url, json=payload, timeout=10.0).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.deliveries.append(Delivery(kind, url, payload, status))
        return status
