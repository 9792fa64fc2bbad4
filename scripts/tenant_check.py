"""`make tenant-check`: check, against a real tenant and a Dime.Scheduler sandbox, what the fakes assume.

The tests run against stateful fakes of Microsoft Graph and Dime.Scheduler (tests/fakes). Where
the public sources leave a behaviour unverified, the fakes play every plausible answer and the code
is tested under each (docs/verification.md lists them). This script observes the real answer.

Opt-in and never in CI: it reads real credentials from the environment, touches only the mailbox
it is given (events prefixed "[tenant-check]", a calendar of that name) and the Dime.Scheduler
resource it is given, cleans up after itself (also after a failure), and prints a table:
behaviour | expected by the fakes | observed | agrees.

Environment (Graph checks need the first four, Dime.Scheduler checks the last three):

    TENANT_CHECK_TENANT_ID, TENANT_CHECK_CLIENT_ID, TENANT_CHECK_CLIENT_SECRET   app registration
        with Calendars.ReadWrite (application), restricted to the test mailbox if you can
    TENANT_CHECK_MAILBOX          object id or UPN of a test mailbox
    TENANT_CHECK_GRAPH_URL        default https://graph.microsoft.com/v1.0
    TENANT_CHECK_DIME_URL         e.g. https://sandbox.api.dimescheduler.com
    TENANT_CHECK_DIME_API_KEY     an API key of that sandbox
    TENANT_CHECK_DIME_RESOURCE_EMAIL  e-mail of a resource in the sandbox

Adding a check: write a function taking a `Context` and returning what was observed (a short
string), decorate it with `@check(behaviour, expected, agrees=...)`, and register what it
creates with `ctx.cleanup(...)`. Its unit test (tests/integration/test_tenant_check.py) runs every check
against the fakes.

    .venv/bin/python scripts/tenant_check.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.core.dime_to_outlook.publication import (  # noqa: E402
    PublicationError,
    appointment_id_of,
    guid_of,
    parse_publication,
)
from shared.core.outlook_to_dime.appointments import PARAMETER_NAMES  # noqa: E402

GRAPH_ENV = ("TENANT_CHECK_TENANT_ID", "TENANT_CHECK_CLIENT_ID", "TENANT_CHECK_CLIENT_SECRET", "TENANT_CHECK_MAILBOX")
DIME_ENV = ("TENANT_CHECK_DIME_URL", "TENANT_CHECK_DIME_API_KEY", "TENANT_CHECK_DIME_RESOURCE_EMAIL")
PREFER = 'IdType="ImmutableId", outlook.timezone="UTC", outlook.body-content-type="text"'
PREFIX = "[tenant-check]"
SERIES_FIELDS = {"@odata.etag", "id", "type", "seriesMasterId", "start", "end"}


class Skipped(Exception):
    """A check that cannot run with what was configured."""


@dataclass
class Context:
    """What checks use: Graph and Dime.Scheduler clients, the mailbox, and a cleanup stack."""

    graph: httpx.Client | None
    mailbox: str
    dime: httpx.Client | None = None
    resource_email: str = ""
    when: datetime = field(default_factory=lambda: (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0))
    _cleanups: list[Callable[[], Any]] = field(default_factory=list)

    def cleanup(self, action: Callable[[], Any]) -> None:
        self._cleanups.append(action)

    def run_cleanups(self) -> list[str]:
        problems = []
        while self._cleanups:
            action = self._cleanups.pop()
            try:
                action()
            except Exception as error:  # keep cleaning up
                problems.append(f"{type(error).__name__}: {error}")
        return problems

    # Graph helpers ---------------------------------------------------------------------------
    def g(self) -> httpx.Client:
        if self.graph is None:
            raise Skipped("Graph is not configured")
        return self.graph

    def user_path(self) -> str:
        return f"/users/{quote(self.mailbox, safe='@')}"

    def create_event(self, subject: str, hours: int = 1, **fields: Any) -> dict[str, Any]:
        path = fields.pop("_path", None) or f"{self.user_path()}/events"
        body = {
            "subject": f"{PREFIX} {subject}",
            "start": {"dateTime": self.when.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": (self.when + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            **fields,
        }
        response = self.g().post(path, json=body)
        response.raise_for_status()
        event = response.json()
        self.cleanup(lambda: self.g().delete(f"{self.user_path()}/events/{quote(event['id'], safe='')}"))
        return event

    def window(self, days: int = 7) -> dict[str, str]:
        start = self.when - timedelta(days=1)
        return {
            "startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": (start + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def delta_items(self) -> list[dict[str, Any]]:
        """A fresh delta round over the window, every page."""
        url: str | None = f"{self.user_path()}/calendarView/delta"
        params: dict[str, str] | None = self.window()
        items: list[dict[str, Any]] = []
        while url:
            page = self.g().get(url, params=params, headers={"Prefer": f"{PREFER}, odata.maxpagesize=50"})
            page.raise_for_status()
            body = page.json()
            items += body.get("value", [])
            url, params = body.get("@odata.nextLink"), None
        return items

    # Dime.Scheduler helpers ------------------------------------------------------------------
    def d(self) -> httpx.Client:
        if self.dime is None or not self.resource_email:
            raise Skipped("Dime.Scheduler is not configured")
        return self.dime


@dataclass(frozen=True)
class Check:
    name: str
    behaviour: str
    expected: str
    run: Callable[[Context], str]
    agrees: Callable[[str], bool]


CHECKS: list[Check] = []


def check(behaviour: str, expected: str, agrees: Callable[[str], bool]) -> Callable[[Callable], Callable]:
    """Register a check: `agrees(observed)` says whether the real answer is one the fakes play."""

    def register(function: Callable[[Context], str]) -> Callable[[Context], str]:
        CHECKS.append(Check(function.__name__, behaviour, expected, function, agrees))
        return function

    return register


# Graph ---------------------------------------------------------------------------------------
@check(
    "GET of a deleted event (immutable id)",
    "404 or 200 (FakeGraph deleted_get_status plays both)",
    lambda seen: seen in ("404", "200"),
)
def get_of_deleted_event(ctx: Context) -> str:
    event = ctx.create_event("deleted")
    path = f"{ctx.user_path()}/events/{quote(event['id'], safe='')}"
    ctx.g().delete(path).raise_for_status()
    return str(ctx.g().get(path).status_code)


@check(
    "GET /subscriptions/{id} of a subscription Graph does not hold",
    "404 (a lifecycle item is confirmed by GET: 404 = removed; FakeGraph answers 404)",
    lambda seen: seen == "404",
)
def get_of_unknown_subscription(ctx: Context) -> str:
    return str(ctx.g().get(f"/subscriptions/{uuid.uuid4()}").status_code)


@check(
    "calendarView lists a deleted event",
    "no (membership in calendarView is the proof a GET cannot give)",
    lambda seen: seen == "no",
)
def calendar_view_after_delete(ctx: Context) -> str:
    event = ctx.create_event("deleted, view")
    ctx.g().delete(f"{ctx.user_path()}/events/{quote(event['id'], safe='')}").raise_for_status()
    view = ctx.g().get(f"{ctx.user_path()}/calendar/calendarView", params=ctx.window(), headers={"Prefer": PREFER})
    view.raise_for_status()
    return "yes" if any(item.get("id") == event["id"] for item in view.json().get("value", [])) else "no"


@check(
    "body of a single event in a delta item",
    "absent, text or html (FakeGraph delta_body plays each; the app reads content by GET/$batch only)",
    lambda seen: seen in ("absent", "text", "html"),
)
def delta_body_content_type(ctx: Context) -> str:
    event = ctx.create_event("delta body", body={"contentType": "text", "content": "plain <text>"})
    item = next((i for i in ctx.delta_items() if i.get("id") == event["id"]), None)
    if item is None:
        return "not listed"
    body = item.get("body")
    return str(body.get("contentType", "?")).lower() if isinstance(body, dict) else "absent"


@check(
    "delta items of a series' occurrences",
    "partial: at most id, type, seriesMasterId, start, end, @odata.etag",
    lambda seen: seen.startswith("partial"),
)
def delta_occurrences_are_partial(ctx: Context) -> str:
    master = ctx.create_event("series, delta", recurrence=_daily(ctx, 3))
    items = [i for i in ctx.delta_items() if i.get("seriesMasterId") == master["id"]]
    if not items:
        return "no occurrences listed"
    extra = sorted({key for item in items for key in item} - SERIES_FIELDS)
    return "partial" if not extra else "full: " + ",".join(extra[:6])


@check(
    "the deltaLink answered to an idle delta (nothing changed since the last one)",
    "same or new (FakeGraph issues a new one; tests play both: the delta row is written only when it moved)",
    lambda seen: seen in ("same", "new"),
)
def idle_delta_link(ctx: Context) -> str:
    def follow(url: str, params: dict[str, str] | None) -> str:
        while True:
            page = ctx.g().get(url, params=params, headers={"Prefer": f"{PREFER}, odata.maxpagesize=50"})
            page.raise_for_status()
            body = page.json()
            if body.get("@odata.deltaLink"):
                return str(body["@odata.deltaLink"])
            url, params = body["@odata.nextLink"], None

    first = follow(f"{ctx.user_path()}/calendarView/delta", ctx.window())
    idle = follow(first, None)
    return "same" if follow(idle, None) == idle else "new"


@check(
    "a $batch of 20 GETs of one mailbox, nothing else in flight (issue 20: reads shared across messages)",
    "0 members throttled: a $batch holds min(4, its members) of the mailbox's 4 concurrent requests "
    "(FakeGraph counts it so; 429 MailboxConcurrency only beyond 4)",
    lambda seen: seen == "0 of 20 throttled",
)
def batch_of_one_mailbox_within_its_limit(ctx: Context) -> str:
    event = ctx.create_event("batch")
    url = f"{ctx.user_path()}/events/{quote(event['id'], safe='')}?$select=id"
    members = [{"id": str(n), "method": "GET", "url": url} for n in range(1, 21)]
    answer = ctx.g().post("/$batch", json={"requests": members})
    answer.raise_for_status()
    throttled = sum(1 for member in answer.json().get("responses", []) if member.get("status") == 429)
    return f"{throttled} of 20 throttled"


@check(
    "/events/{master}/instances and GET of an occurrence id",
    "3 instances with full data; GET of one returns the full occurrence",
    lambda seen: seen == "3 full, get 200",
)
def instances_and_occurrence_get(ctx: Context) -> str:
    master = ctx.create_event("series, instances", recurrence=_daily(ctx, 3))
    listed = ctx.g().get(
        f"{ctx.user_path()}/events/{quote(master['id'], safe='')}/instances",
        params=ctx.window(),
        headers={"Prefer": PREFER},
    )
    listed.raise_for_status()
    instances = listed.json().get("value", [])
    full = all("subject" in i and "sensitivity" in i for i in instances)
    status = "-"
    if instances:
        status = str(ctx.g().get(f"{ctx.user_path()}/events/{quote(instances[0]['id'], safe='')}").status_code)
    return f"{len(instances)} {'full' if full else 'partial'}, get {status}"


@check(
    "an event of a second calendar in calendarView/delta",
    "not listed (delta and /calendarView cover the primary calendar only)",
    lambda seen: seen == "not listed",
)
def second_calendar_not_in_delta(ctx: Context) -> str:
    created = ctx.g().post(f"{ctx.user_path()}/calendars", json={"name": f"{PREFIX} {uuid.uuid4().hex[:6]}"})
    if created.status_code == 404:
        raise Skipped("this Graph has no /calendars (the fakes model the second calendar by the event helper)")
    created.raise_for_status()
    calendar = created.json()
    ctx.cleanup(lambda: ctx.g().delete(f"{ctx.user_path()}/calendars/{quote(calendar['id'], safe='')}"))
    other = ctx.create_event(
        "other calendar", _path=f"{ctx.user_path()}/calendars/{quote(calendar['id'], safe='')}/events"
    )
    return "listed" if any(i.get("id") == other["id"] for i in ctx.delta_items()) else "not listed"


def _daily(ctx: Context, count: int) -> dict[str, Any]:
    return {
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": ctx.when.date().isoformat(), "numberOfOccurrences": count},
    }


# Dime.Scheduler ------------------------------------------------------------------------------
IMPORT_NAMES = list(PARAMETER_NAMES)  # exactly what the app sends


def _import(ctx: Context, procedure: str, **values: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """One call; returns (HTTP status, envelope, decoded content)."""
    params = {
        "AppointmentId": "0",
        "ExchangeId": f"tenant-check-{values.get('AppointmentGuid', '')[:8]}",
        "ICalUId": "",
        "Start": ctx.when.strftime("%Y-%m-%d %H:%M:%SZ"),
        "End": (ctx.when + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%SZ"),
        "Subject": f"{PREFIX} import",
        "Body": "",
        "Importance": "0",
        "ResourceEmail": ctx.resource_email,
        "ShowAs": "3",
        "Sensitivity": "1",
        "Categories": "",
        "CreatedByExchange": "True",
        **values,
    }
    call = {
        "StoredProcedureName": procedure,
        "ParameterNames": IMPORT_NAMES,
        "ParameterValues": [params[name] for name in IMPORT_NAMES],
    }
    response = ctx.d().post("/import", json=[call])
    envelope = response.json() if response.content else {}
    lowered = {str(k).lower(): v for k, v in envelope.items()} if isinstance(envelope, dict) else {}
    content = lowered.get("content", envelope)
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            content = {"raw": content[:200]}
    return response.status_code, envelope if isinstance(envelope, dict) else {}, content or {}


def _new_appointment(ctx: Context) -> tuple[str, dict[str, Any]]:
    ctx.d()
    guid = str(uuid.uuid4())
    _, _, content = _import(ctx, "mboc_upsertExchangeAppointment", AppointmentGuid=guid)
    ctx.cleanup(lambda: _import(ctx, "mboc_deleteExchangeAppointment", AppointmentGuid=guid))
    return guid, content


@check(
    "the import's answer: Appointments[].Id for the GUID",
    "a number other than 0, for the GUID sent",
    lambda seen: seen.startswith("id "),
)
def import_answers_appointment_id(ctx: Context) -> str:
    guid, content = _new_appointment(ctx)
    lowered = {str(k).lower(): v for k, v in content.items()}
    for item in lowered.get("appointments") or []:
        item = {str(k).lower(): v for k, v in item.items()}
        if str(item.get("guid", "")).lower() == guid and str(item.get("id", "0")) not in ("", "0"):
            return f"id {item['id']}"
    return "no id: " + json.dumps(content)[:80]


@check(
    "import envelope key casing",
    "content/statusCode, any casing (read case-insensitively)",
    lambda seen: seen.lower() == "content,statuscode",
)
def envelope_keys(ctx: Context) -> str:
    _, envelope, _ = _import(ctx, "mboc_upsertExchangeAppointment", AppointmentGuid=_tracked_guid(ctx))
    return ",".join(k for k in envelope if str(k).lower() in ("content", "statuscode"))


@check(
    "delete with an empty date",
    "refused (the app always sends the last typed values)",
    lambda seen: seen == "refused",
)
def delete_with_empty_date(ctx: Context) -> str:
    guid, _ = _new_appointment(ctx)
    status, envelope, content = _import(ctx, "mboc_deleteExchangeAppointment", AppointmentGuid=guid, Start="")
    inner = {str(k).lower(): v for k, v in envelope.items()}.get("statuscode", status)
    failed = status >= 400 or inner != 200 or bool(content.get("Error")) or content.get("Success") is False
    return "refused" if failed else "accepted"


def _tracked_guid(ctx: Context) -> str:
    ctx.d()  # Skipped before anything is registered for cleanup
    guid = str(uuid.uuid4())
    ctx.cleanup(lambda: _import(ctx, "mboc_deleteExchangeAppointment", AppointmentGuid=guid))
    return guid


# Dime.Scheduler -> Outlook ---------------------------------------------------------------------
TAG_ID = (
    "String {3c1f6a52-7d0e-4b9a-9f53-2f7d8e1b6a40} Name DimeSchedulerAppointment"  # shared/core/dime_to_outlook/tag.py
)


@check(
    "a second POST /events with the same transactionId",
    "dropped: 201 with the first event, or an error (FakeGraph duplicate_create plays both)",
    lambda seen: seen in ("201 same event", "409", "400"),
)
def duplicate_transaction_id(ctx: Context) -> str:
    tx = str(uuid.uuid4())
    first = ctx.create_event("transactionId", transactionId=tx)
    body = {
        "subject": f"{PREFIX} transactionId again",
        "start": {"dateTime": ctx.when.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (ctx.when + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "transactionId": tx,
    }
    second = ctx.g().post(f"{ctx.user_path()}/events", json=body)
    if second.status_code == 201 and second.json().get("id") != first["id"]:
        ctx.cleanup(lambda: ctx.g().delete(f"{ctx.user_path()}/events/{quote(second.json()['id'], safe='')}"))
        return "201 new event"
    return "201 same event" if second.status_code == 201 else str(second.status_code)


@check(
    "our tag: $expand with $select on GET, and $filter on the extended property",
    "expanded and found",
    lambda seen: seen == "expanded and found",
)
def tag_expand_and_filter(ctx: Context) -> str:
    value = f"{uuid.uuid4()}|tenant-check"
    event = ctx.create_event("tagged", singleValueExtendedProperties=[{"id": TAG_ID, "value": value}])
    expand = f"singleValueExtendedProperties($filter=id eq '{TAG_ID}')"
    read = ctx.g().get(
        f"{ctx.user_path()}/events/{quote(event['id'], safe='')}",
        params={"$select": "id,subject,changeKey", "$expand": expand},
    )
    read.raise_for_status()
    props = read.json().get("singleValueExtendedProperties") or []
    expanded = any(p.get("value") == value for p in props)
    text = f"singleValueExtendedProperties/any(ep: ep/id eq '{TAG_ID}' and ep/value eq '{value}')"
    listed = ctx.g().get(f"{ctx.user_path()}/events", params={"$filter": text})
    found = listed.status_code == 200 and [e.get("id") for e in listed.json().get("value", [])] == [event["id"]]
    return (
        f"{'expanded' if expanded else 'not expanded'} and {'found' if found else f'not found ({listed.status_code})'}"
    )


@check(
    "PATCH of an event the person deleted (it sits in Deleted Items under its immutable id)",
    "404 or 200 (FakeGraph deleted_patch_status plays both; the app proves a patched event is in the calendar)",
    lambda seen: seen in ("404", "200"),
)
def patch_of_deleted_event(ctx: Context) -> str:
    event = ctx.create_event("deleted, patched")
    path = f"{ctx.user_path()}/events/{quote(event['id'], safe='')}"
    ctx.g().delete(path).raise_for_status()
    return str(ctx.g().patch(path, json={"subject": f"{PREFIX} patched after delete"}).status_code)


@check(
    "a second DELETE of the same event",
    "404 or 403 ErrorCannotDeleteObject (FakeGraph deleted_delete_status plays both; both mean gone)",
    lambda seen: seen in ("404", "204", "403 ErrorCannotDeleteObject"),
)
def repeated_delete(ctx: Context) -> str:
    event = ctx.create_event("deleted twice")
    path = f"{ctx.user_path()}/events/{quote(event['id'], safe='')}"
    ctx.g().delete(path).raise_for_status()
    again = ctx.g().delete(path)
    if again.status_code == 403:
        code = (again.json().get("error") or {}).get("code", "") if again.content else ""
        return f"403 {code}"
    return str(again.status_code)


@check(
    "calendarView with $expand of our tag (the Dime.Scheduler reconcile's orphan sweep)",
    "tag expanded on our event, absent on others",
    lambda seen: seen == "tag expanded on our event, absent on others",
)
def calendar_view_expands_tag(ctx: Context) -> str:
    value = f"{uuid.uuid4()}|tenant-check"
    ours = ctx.create_event("tagged, view", singleValueExtendedProperties=[{"id": TAG_ID, "value": value}])
    theirs = ctx.create_event("untagged, view")
    view = ctx.g().get(
        f"{ctx.user_path()}/calendar/calendarView",
        params={
            **ctx.window(),
            "$select": "id,start,end",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{TAG_ID}')",
        },
        headers={"Prefer": PREFER},
    )
    view.raise_for_status()
    items = {item.get("id"): item.get("singleValueExtendedProperties") for item in view.json().get("value", [])}
    expanded = any(p.get("value") == value for p in items.get(ours["id"]) or [])
    return "tag expanded on our event, absent on others" if expanded and not items.get(theirs["id"]) else f"{items}"


@check(
    "$select with $expand on calendarView: which properties come back",
    "id, @odata.etag, the selected ones and the expanded tag; nothing unselected (FakeGraph applies every $select)",
    lambda seen: seen == "selected, etag and tag only",
)
def select_with_expand_keys(ctx: Context) -> str:
    value = f"{uuid.uuid4()}|tenant-check"
    ours = ctx.create_event("tagged, select", singleValueExtendedProperties=[{"id": TAG_ID, "value": value}])
    view = ctx.g().get(
        f"{ctx.user_path()}/calendar/calendarView",
        params={
            **ctx.window(),
            "$select": "id,start,end",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{TAG_ID}')",
        },
        headers={"Prefer": PREFER},
    )
    view.raise_for_status()
    [item] = [item for item in view.json().get("value", []) if item.get("id") == ours["id"]] or [{}]
    keys = sorted(item)
    wanted = ["@odata.etag", "end", "id", "singleValueExtendedProperties", "start"]
    return "selected, etag and tag only" if keys == wanted else f"keys {keys}"


def _resource_no(ctx: Context) -> tuple[str, dict[str, Any]]:
    listing = ctx.d().get("/resource")
    listing.raise_for_status()
    body = listing.json()
    items = body if isinstance(body, list) else next((v for v in body.values() if isinstance(v, list)), [])
    for item in items:
        lowered = {str(k).lower(): v for k, v in item.items()}
        if str(lowered.get("email") or "").lower() == ctx.resource_email.lower():
            return str(lowered.get("resourceno")), lowered
    raise Skipped(f"GET /resource lists no resource with e-mail {ctx.resource_email}")


@check(
    "GET /resource: exchangeIntegrationEnabled of the test resource",
    "present, true or false",
    lambda seen: seen in ("true", "false"),
)
def resource_exchange_flag(ctx: Context) -> str:
    _, resource = _resource_no(ctx)
    flag = resource.get("exchangeintegrationenabled")
    return str(flag).lower() if flag is not None else "absent"


@check(
    "the shape of GET /appointment?startDate&endDate&resources",
    "an array or {value: [...]}, PascalCase or camelCase (the parser reads all; FakeDime listing_shape)",
    lambda seen: seen.split(",")[0] in ("array", "envelope"),
)
def appointment_listing_shape(ctx: Context) -> str:
    number, _ = _resource_no(ctx)
    start = (ctx.when - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (ctx.when + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listing = ctx.d().get("/appointment", params={"startDate": start, "endDate": end, "resources": [number]})
    listing.raise_for_status()
    body = listing.json()
    items = body if isinstance(body, list) else body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return "unknown: " + json.dumps(body)[:60]
    shape = "array" if isinstance(body, list) else "envelope"
    if not items:
        return f"{shape}, empty"
    keys = items[0].keys() if isinstance(items[0], dict) else []
    style = "PascalCase" if "AppointmentGuid" in keys else "camelCase" if "appointmentGuid" in keys else "other"
    return f"{shape}, {style}"


def _listed_items(ctx: Context) -> list[Any]:
    """The test resource's appointments over two months around `when` (GET /appointment)."""
    number, _ = _resource_no(ctx)
    start = (ctx.when - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (ctx.when + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listing = ctx.d().get("/appointment", params={"startDate": start, "endDate": end, "resources": [number]})
    listing.raise_for_status()
    body = listing.json()
    items = body if isinstance(body, list) else body.get("value") if isinstance(body, dict) else None
    if not items:
        raise Skipped("plan an appointment for the test resource within 30 days of the check's date")
    return items


@check(
    "GET /appointment: its times' offset and its resource list",
    "an offset or none (none: read in DIME_TIME_ZONE); Assignments or Resources in a shape the parser reads",
    lambda seen: seen.startswith("readable"),
)
def listing_times_and_resources(ctx: Context) -> str:
    item = _listed_items(ctx)[0]
    lowered = {str(k).lower(): v for k, v in item.items()} if isinstance(item, dict) else {}
    start = str(lowered.get("startdate") or lowered.get("start") or "")
    offset = "no offset" if len(start) >= 19 and not start[19:].strip(".0123456789") else "offset"
    key = next((k for k in item if str(k).lower() in ("assignments", "resources")), "no resource list")
    try:
        parse_publication(item, UTC)
    except PublicationError as error:
        return f"unreadable ({offset}, {key}): {error}"[:120]
    return f"readable, {offset}, {key}"


@check(
    "GET /appointment/{id}: the appointment by its internal Id",
    "200 with the AppointmentGuid of that Id (the worker resolves connector payloads without a GUID)",
    lambda seen: seen == "200, guid",
)
def appointment_by_id(ctx: Context) -> str:
    listed = next((i for i in _listed_items(ctx) if appointment_id_of(i) and guid_of(i)), None)
    if listed is None:
        return "the listing carries no Id and GUID"
    answer = ctx.d().get(f"/appointment/{appointment_id_of(listed)}")
    if answer.status_code != 200:
        return str(answer.status_code)
    body = answer.json()
    items = body if isinstance(body, list) else body.get("value", [body]) if isinstance(body, dict) else []
    same = any(guid_of(i) == guid_of(listed) for i in items if isinstance(i, dict))
    return "200, guid" if same else "200, no guid: " + json.dumps(body)[:60]


@check(
    "the e-mail an appointment carries for the test resource, against GET /resource's",
    "equal to the resource record's, or absent (a differing one is refused: email-mismatch)",
    lambda seen: seen in ("equal", "absent"),
)
def assignment_email(ctx: Context) -> str:
    """The payload's e-mail is only a hint that must agree with the directory (eligibility.py): if
    Dime.Scheduler put another address there (a contact e-mail), every assignment would be refused."""
    from shared.core.dime_to_outlook.publication import PublicationError, items_of, parse_publication

    number, resource = _resource_no(ctx)
    start = (ctx.when - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (ctx.when + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listing = ctx.d().get("/appointment", params={"startDate": start, "endDate": end, "resources": [number]})
    listing.raise_for_status()
    record = str(resource.get("email") or "").strip().lower()
    for item in items_of(listing.json()):
        try:
            assignments = parse_publication(item).assignments
        except PublicationError:
            continue
        for assignment in assignments:
            if assignment.resource_no == number:
                if not assignment.email:
                    return "absent"
                return "equal" if assignment.email.strip().lower() == record else f"different: {assignment.email}"
    raise Skipped(f"no appointment of {number} listed within 30 days: plan one for the test resource")


@check(
    "where the 201 of POST /webhooks/AppointmentCreated names the hook id",
    "the Location header or the body (FakeDime hook_id_in plays location, body, both)",
    lambda seen: seen in ("location", "body", "both"),
)
def hook_id_place(ctx: Context) -> str:
    ctx.d()
    body = {
        "sourceApp": "TENANTCHECK",
        "name": f"{PREFIX} hook",
        # with a query, as the app registers them (?code=<DIME_PUBLICATIONS_KEY>): accepted too?
        "notificationURL": "https://example.invalid/api/dime/publications/created?code=tenant-check-not-a-key",
        "resource": "Appointments",
        "changeType": ["Create"],
    }
    created = ctx.d().post("/webhooks/AppointmentCreated", json=body)
    created.raise_for_status()
    location = created.headers.get("Location", "")
    from_location = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
    payload = created.json() if created.content and "json" in created.headers.get("content-type", "") else None
    from_body = ""
    if isinstance(payload, dict):
        from_body = str(next((v for k, v in payload.items() if k.lower() in ("id", "hookid")), "") or "")
    hook_id = from_location or from_body
    if hook_id:
        ctx.cleanup(lambda: ctx.d().delete(f"/webhooks/AppointmentCreated/{quote(hook_id, safe='')}"))
    if from_location and from_body:
        return "both"
    return "location" if from_location else "body" if from_body else "none"


# Running -------------------------------------------------------------------------------------
@dataclass
class Row:
    behaviour: str
    expected: str
    observed: str
    agrees: str  # "yes", "NO", "skipped", "error"


def run_checks(ctx: Context, only: set[str] | None = None) -> list[Row]:
    rows = []
    for item in CHECKS:
        if only and item.name not in only:
            continue
        try:
            observed = item.run(ctx)
            agrees = "yes" if item.agrees(observed) else "NO"
        except Skipped as why:
            observed, agrees = str(why), "skipped"
        except Exception as error:
            observed, agrees = f"{type(error).__name__}: {str(error)[:80]}", "error"
        finally:
            for problem in ctx.run_cleanups():
                print(f"cleanup after {item.name}: {problem}", file=sys.stderr)
        rows.append(Row(item.behaviour, item.expected, observed, agrees))
    return rows


def table(rows: list[Row]) -> str:
    cells = [("behaviour", "expected by the fakes", "observed", "agrees")] + [
        (r.behaviour, r.expected, r.observed, r.agrees) for r in rows
    ]
    widths = [min(60, max(len(c[i]) for c in cells)) for i in range(4)]
    lines = []
    for n, row in enumerate(cells):
        lines.append(" | ".join(str(cell)[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def context_from_environment(env: dict[str, str]) -> Context:
    graph = dime = None
    if all(env.get(name) for name in GRAPH_ENV):
        from azure.identity import ClientSecretCredential

        from shared.core.graph_cloud import graph_cloud

        base_url = env.get("TENANT_CHECK_GRAPH_URL") or "https://graph.microsoft.com/v1.0"
        cloud = graph_cloud(base_url)  # a national cloud: its own scope and sign-in authority
        credential = ClientSecretCredential(
            env["TENANT_CHECK_TENANT_ID"],
            env["TENANT_CHECK_CLIENT_ID"],
            env["TENANT_CHECK_CLIENT_SECRET"],
            authority=cloud.authority,
        )
        token = credential.get_token(*cloud.scopes).token
        graph = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Prefer": PREFER},
            timeout=30,
        )
    if all(env.get(name) for name in DIME_ENV):
        dime = httpx.Client(
            base_url=env["TENANT_CHECK_DIME_URL"], headers={"X-API-KEY": env["TENANT_CHECK_DIME_API_KEY"]}, timeout=30
        )
    return Context(
        graph=graph,
        mailbox=env.get("TENANT_CHECK_MAILBOX", ""),
        dime=dime,
        resource_email=env.get("TENANT_CHECK_DIME_RESOURCE_EMAIL", ""),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only these checks (function names)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if not all(env.get(n) for n in GRAPH_ENV) and not all(env.get(n) for n in DIME_ENV):
        print("tenant-check is opt-in: set " + ", ".join(GRAPH_ENV) + " and/or " + ", ".join(DIME_ENV), file=sys.stderr)
        return 2
    ctx = context_from_environment(env)
    rows = run_checks(ctx, set(args.only) if args.only else None)
    print(table(rows))
    return 1 if any(r.agrees in ("NO", "error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
