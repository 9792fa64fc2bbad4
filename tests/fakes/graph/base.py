"""The shared base of ``FakeGraph``: its state and the helpers every concern uses."""

from __future__ import annotations

import base64
import copy
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Self
from urllib.parse import unquote, urlencode, urlsplit

from .._http import FaultInjector, LoopbackServer, RecordedRequest, Request, Response
from .common import (
    DEFAULT_INSTANCES_PAGE,
    MAX_INSTANCES_PAGE,
    Delivery,
    GraphError,
    _DeltaRound,
    _DeltaToken,
    _Event,
    _Outgoing,
    _Series,
    _Subscription,
    _utc_now,
    format_local,
    graph_error,
    parse_datetime,
    parse_prefer,
    zone,
)

# Outlook service limits: "4 concurrent requests" per app per mailbox, beyond which Graph answers
# 429 with Retry-After (https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits;
# JSON batching: members are evaluated individually against the limits,
# https://learn.microsoft.com/en-us/graph/json-batching#throttling-and-batching). Counted here across
# every client of the fake (several worker processes share it), keyed on the user segment of the path.
MAILBOX_CONCURRENCY = 4
CONCURRENCY_RETRY_AFTER = 1  # seconds, as a real 429 states
# Graph's own time to serve a request, told by the bench's delaying proxy (scripts/latency_proxy.py)
# instead of waiting itself: spent here while the request holds its mailbox's slots, because Graph
# counts a request against the 4 for as long as Outlook works on it, not for the fake's millisecond.
SERVICE_TIME_HEADER = "x-fake-service-seconds"


def _mailbox_of(path: str) -> str | None:
    """The mailbox (user segment, lower-cased) a Graph path addresses, if any."""
    parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
    if parts and parts[0].lower() == "v1.0":
        parts = parts[1:]
    return parts[1].lower() if len(parts) >= 2 and parts[0].lower() == "users" else None


class GraphBase(LoopbackServer):
    """State, ids, users, rendering, faults and the HTTP entry point shared by every concern.

    The concerns (events and series, delta, ``$batch``, subscriptions and notifications) are mixins
    composed into ``FakeGraph``; they all read and write the state held here, under ``_lock``."""

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
        deleted_get_status: int = 404,
        deleted_patch_status: int = 404,
        deleted_delete_status: int = 404,
        delta_body: str | None = None,
        delta_sparse: bool = False,
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
            deleted_get_status: what ``GET /events/{id}`` answers for a deleted event: 404, or 200
                with the event as it was (immutable ids survive the move to Deleted Items; whether
                GET still answers is **unverified**, https://learn.microsoft.com/graph/outlook-immutable-id;
                docs/verification.md).
            deleted_patch_status: what ``PATCH /events/{id}`` answers for a deleted event: 404, or 200
                with the edit applied to the copy in Deleted Items, which stays there (immutable ids
                keep the id across the move, so a PATCH of an event the person deleted may succeed:
                https://learn.microsoft.com/graph/outlook-immutable-id; **unverified**, docs/verification.md).
            deleted_delete_status: what a repeated ``DELETE /events/{id}`` answers: 404, or 403
                ``ErrorCannotDeleteObject`` (msgraph-sdk-dotnet #3047, seen for messages; for events
                **unverified**, https://github.com/microsoftgraph/msgraph-sdk-dotnet/issues/3047).
            delta_body: whether delta items carry the body: None (omitted), "text" or "html" (whether
                delta honours ``Prefer: outlook.body-content-type`` is **unverified**, https://learn.microsoft.com/graph/delta-query-events).
            delta_sparse: delta items of single events carry only id, type, changeKey, start, end,
                subject ("updated items carry at least the changed properties",
                https://learn.microsoft.com/graph/delta-query-events); series
                items are always partial (id, type, seriesMasterId, start, end, @odata.etag).

        ``id_aliases`` (attribute, empty by default): requested id → stored id. A GET (alone or in a
        ``$batch``) of an alias answers the stored event under its own ``id``, e.g. a case variant of
        the id. Whether Graph ever answers an id other than the one asked for (case-insensitive id
        matching, an id format change) is **unverified** (docs/verification.md "Unverified behaviours").
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
        self._in_flight: Counter[str] = Counter()  # mailbox → requests being served (all clients)
        self.max_in_flight: Counter[str] = Counter()  # mailbox → the most served at once
        self.concurrency_refusals = 0  # requests and members answered 429 MailboxConcurrency
        self._refused = threading.local()  # the mailboxes over their limit for this thread's $batch
        self._users: dict[str, dict[str, Any]] = {}
        self._events: dict[str, dict[str, _Event]] = {}
        self._tombstones: dict[str, dict[str, int]] = {}
        self._series: dict[str, _Series] = {}  # master id → exceptions and cancelled occurrences
        self._deleted: dict[str, dict[str, _Event]] = {}  # mailbox → deleted events (Deleted Items)
        self.deleted_get_status = deleted_get_status
        self.deleted_patch_status = deleted_patch_status
        self.deleted_delete_status = deleted_delete_status
        self.delta_body = delta_body
        self.delta_sparse = delta_sparse
        self.id_aliases: dict[str, str] = {}
        self._transactions: dict[tuple[str, str], str] = {}
        self._seq = 0
        self._delta_tokens: dict[str, _DeltaToken] = {}
        self._skip_tokens: dict[str, tuple[_DeltaRound, int, int]] = {}  # → (round, offset, page size)
        self._subscriptions: dict[str, _Subscription] = {}
        self._outbox: list[_Outgoing] = []
        self._faults = FaultInjector()
        self.requests: list[RecordedRequest] = []
        self.sent_mail: list[tuple[str, dict[str, Any]]] = []  # (sender id, sendMail body), in order
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

    def __enter__(self) -> Self:
        return self.start()

    def start(self) -> Self:
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
            self._deleted.setdefault(oid, {})
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
        out = _json_copy(ev.data)
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

    def _mailbox_or_key_error(self, mailbox_id: str) -> str:
        user = self._find_user(mailbox_id)
        if user is None:
            raise KeyError(mailbox_id)
        return str(user["id"])

    def _require(self, mailbox_id: str, event_id: str) -> _Event:
        mailbox = self._mailbox_or_key_error(mailbox_id)
        ev = self._lookup(mailbox, event_id)
        if ev is None:
            raise KeyError(event_id)
        return ev

    def _lookup(self, mailbox: str, event_id: str) -> _Event | None:
        """A stored event or master, else an instance (occurrence or exception) of a series."""
        return self._events[mailbox].get(self.id_aliases.get(event_id, event_id))  # the series mixin adds instances

    @staticmethod
    def _paging(request: Request) -> tuple[int, int]:
        """``$top`` and ``$skip`` of a paged collection (Graph pages by 10 unless ``$top`` says otherwise)."""
        try:
            top = min(MAX_INSTANCES_PAGE, max(1, int(request.query.get("$top", DEFAULT_INSTANCES_PAGE))))
            skip = max(0, int(request.query.get("$skip", 0)))
        except ValueError:
            raise GraphError(400, "BadRequest", "Invalid $top or $skip.") from None
        return top, skip

    def _page(self, request: Request, value: list[dict[str, Any]], total: int, top: int, skip: int) -> Response:
        """One page of a collection of ``total`` items, with an ``@odata.nextLink`` while more remain."""
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/$metadata#Collection(event)", "value": value}
        if skip + top < total:
            query = {k: v for k, v in request.query.items() if k not in ("$skip", "$top")}
            query.update({"$top": str(top), "$skip": str(skip + top)})
            body["@odata.nextLink"] = f"{self.origin}{request.path}?{urlencode(query)}"
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
    def _selected(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        """An event as Graph answers a ``$select``: only the named properties (matched without regard
        to case, as OData names are here), plus ``id`` and ``@odata.etag``, which come back whatever
        the list ("Use query parameters", select parameter,
        https://learn.microsoft.com/graph/query-parameters#select-parameter), plus what ``$expand``
        asked for: an expanded navigation property such as ``singleValueExtendedProperties`` is
        returned beside the selected ones, since ``$expand`` is the only way to read an extended
        property ("Get singleValueLegacyExtendedProperty",
        https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get). A named
        property the event does not carry is simply absent. No ``$select``: the whole event."""
        names = {s.strip().lower() for s in request.query.get("$select", "").split(",") if s.strip()}
        if not names:
            return body
        keep = names | {"id", "@odata.etag", "@odata.context", "singlevalueextendedproperties"}
        return {k: v for k, v in body.items() if k.lower() in keep}

    @staticmethod
    def _expand(request: Request) -> set[str] | bool:
        expand = request.query.get("$expand", "")
        if "singlevalueextendedproperties" not in expand.lower():
            return False
        ids = set(re.findall(r"(?i)id\s+eq\s+'([^']*)'", expand))
        return ids or True

    def _event_or_404(self, mailbox: str, event_id: str) -> _Event:
        ev = self._lookup(mailbox, event_id)
        if ev is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return ev

    @staticmethod
    def _etag_header(ev: _Event) -> dict[str, str]:
        return {"ETag": f'W/"{ev.data["changeKey"]}"'}

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
        weights = self._weights(request, segments)
        with self._lock:
            refused = {m for m, w in weights.items() if self._in_flight[m] + w > MAILBOX_CONCURRENCY}
            held = {m: w for m, w in weights.items() if m not in refused}
            for mailbox, weight in held.items():
                self._in_flight[mailbox] += weight
                self.max_in_flight[mailbox] = max(self.max_in_flight[mailbox], self._in_flight[mailbox])
        try:
            if refused and [s.lower() for s in segments[1:]] != ["$batch"]:
                with self._lock:
                    self.concurrency_refusals += 1
                return self.concurrency_refusal()
            self._refused.mailboxes = refused
            self.sleep(_service_seconds(request))
            return self._serve(request, segments[1:], member=False)
        finally:
            self._refused.mailboxes = set()
            with self._lock:
                for mailbox, weight in held.items():
                    self._in_flight[mailbox] -= weight

    @staticmethod
    def concurrency_refusal() -> Response:
        return graph_error(
            429,
            "MailboxConcurrency",
            "Application is over its MailboxConcurrency limit.",
            {"Retry-After": str(CONCURRENCY_RETRY_AFTER)},
        )

    @staticmethod
    def _weights(request: Request, segments: list[str]) -> dict[str, int]:
        """The mailbox slots a request holds while served: one for a request addressing a user; for
        a `$batch`, min(4, its members) per mailbox (Outlook runs up to 4 of one mailbox at once)."""
        if [s.lower() for s in segments[1:]] == ["$batch"]:
            body = request.json if request.body else None
            members = body.get("requests") if isinstance(body, dict) else None
            counts: Counter[str] = Counter()
            for member in members if isinstance(members, list) else []:
                mailbox = _mailbox_of("/v1.0" + str(member.get("url") or "")) if isinstance(member, dict) else None
                if mailbox:
                    counts[mailbox] += 1
            return {m: min(MAILBOX_CONCURRENCY, n) for m, n in counts.items()}
        mailbox = _mailbox_of(request.path)
        return {mailbox: 1} if mailbox else {}

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


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): what `copy.deepcopy` gives for it, several
    times faster (no memo, no dispatch). A calendarView renders every event it lists, and a bench
    that proves 1,500 events lists ~200 events each: the in-process fake's deepcopy competed with
    the app for the GIL (scripts/bench_bulk.py under py-spy)."""
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return copy.deepcopy(value)  # anything else a test stored: as before


def _service_seconds(request: Request) -> float:
    """The service time the delaying proxy asked for (0 without the header, or when unreadable)."""
    try:
        return max(0.0, min(float(request.headers.get(SERVICE_TIME_HEADER) or 0), 60.0))
    except ValueError:
        return 0.0
