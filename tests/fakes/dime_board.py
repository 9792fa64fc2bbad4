"""The planning board half of ``FakeDime``: planner operations, resources, hooks and publications.

Follows the vendor's docs (https://docs.dimescheduler.com/integrations/webhook/configuration,
https://docs.dimescheduler.com/administration/transactions and the webhook transaction-error codes,
https://docs.dimescheduler.com/integrations/webhook/transaction-errors), the published API description
(https://github.com/dime-scheduler/powerplatform-connector/blob/main/src/apiDefinition.swagger.json), and the payload
a real Webhook
connector posted, documented in the README of the public repository ``hbulens/dela``):

* **Publications on two channels.** "The full appointment schema is published every time you act
  on the planning board"; nothing in it says created/updated/deleted (the hook URL, or our route,
  tells).
  - **Hooks** get the API description's ``appointment-incoming`` schema (PascalCase,
    ``AppointmentGuid``, ``StartDate`` with an offset, ``Task {TaskNo, Job {SourceApp, SourceType,
    JobNo}}``, ``Category {DisplayName, Color}``, ``TimeMarker``, ``Assignments [{ResourceId,
    Resource {ResourceNo, Email}}]``, ``LastModifiedDate``).
  - **Connectors** get what the hbulens/dela README shows a Webhook connector posting: ``Id``,
    ``AppointmentNo``, **local wall-clock** ``StartDate``/``EndDate`` without an offset (in
    ``time_zone``, the board's zone), ``Resources`` instead of ``Assignments``, ``Category {Name,
    Color}``, ``Task {Description, Job {JobNo, Description}}``. Unverified, so played in every
    variant: the ``Resources`` item shape (``resources_shape``: ``"flat"`` ``{ResourceNo, Email,
    DisplayName}``, ``"nested"`` ``{ResourceId, Resource {...}}``, ``"number"`` a bare resource
    number) and whether ``AppointmentGuid`` is in it (``connector_guid``; the README's abbreviated
    body does not show one, so without it only the ``Id`` identifies the appointment).
* **Delivery** (docs, "administration/transactions"; DSWBHK020 "partner HTTP failure", DSWBHK030
  "circuit breaker"): a delivery counts on HTTP 200 and nothing else, **4xx included**; a failed
  attempt is retried ``retries`` (3) times with exponential backoff and jitter (the delays are
  recorded in ``Publication.backoffs`` and passed to ``backoff_sleep``, a no-op by default: no
  test waits), then kept in ``failed`` for ``retry_deliveries()`` (Dime.Scheduler's retry job).
  ``breaker_after`` (5) deliveries in a row that failed every attempt open a circuit breaker for
  that URL: nothing more is sent there, not even by the retry job, until ``close_breaker(url)``
  (how Dime.Scheduler's breaker closes again, after a time or by an administrator, is
  **unverified**). ``fail_rate`` of attempts are lost on the way (connection reset). Cadence and
  ordering are undocumented, so the fake sends ``duplicates`` copies and can shuffle (``reorder``).
* **Hooks** (swagger): ``POST /webhooks/AppointmentCreated|Updated|Deleted`` with
  ``{sourceApp, notificationURL, resource: "Appointments", changeType: [...]}`` → 201, 429 past
  ``max_hooks``; ``DELETE /webhooks/<type>/{hookId}``. Where the 201 carries the hook id is
  **unverified**: ``hook_id_in`` plays ``"location"``, ``"body"`` or ``"both"``.
* **Connectors** (the Webhook connector configured in Dime.Scheduler's UI, routed per source
  app): ``add_connector`` publishes to one URL, optionally with Basic credentials, the changes of
  its CRUD types (the vendor's .NET SDK,
  https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Models/Connector/Connector.cs: ``CrudTypes``, a
  set of ``Crud.Create`` "I", ``Crud.Update`` "U", ``Crud.Delete`` "D"; so a
  connector with "D" ticked posts deletes with the same schema and nothing saying "deleted").
  ``crud`` defaults to create and update (one connector: deletes not distinguishable); one
  connector per CRUD type, each with its own ``/publications/{change}`` URL, makes them explicit.
* ``GET /resource`` lists ``resourceNo``, ``email``, ``exchangeIntegrationEnabled``;
  ``GET /appointment?startDate&endDate&resources=…`` lists planned appointments and
  ``GET /appointment/{id}`` (the vendor's Python SDK, ``appointments.get_by_id``) answers one by
  its internal ``Id`` (404 once deleted); the answers' shape is **unverified**: ``listing_shape``
  plays ``"pascal"`` (the publication schema), ``"flat"`` (camelCase) or ``"envelope"``
  ({"value": [...]}).
"""

from __future__ import annotations

import base64
import copy
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx

from ._http import Request, Response

HOOK_TYPES = {"appointmentcreated": "created", "appointmentupdated": "updated", "appointmentdeleted": "deleted"}
HOOK_NAMES = {"created": "AppointmentCreated", "updated": "AppointmentUpdated", "deleted": "AppointmentDeleted"}


@dataclass
class Publication:
    url: str
    payload: dict[str, Any]
    auth: tuple[str, str] | None = None
    attempts: int = 0
    status: int = 0  # last answer; 0 = not delivered yet, unreachable, or held back by an open breaker
    statuses: list[int] = field(default_factory=list)  # every attempt's answer, in order
    backoffs: list[float] = field(default_factory=list)  # seconds waited before each retry


@dataclass
class _Planned:
    guid: str
    number: str
    subject: str
    body: str
    start: datetime
    end: datetime
    importance: int
    job_no: str
    task_no: str
    source_app: str
    category: str | None
    time_marker: str | None
    resources: list[str]
    created: datetime
    modified: datetime
    id: int = 0  # Dime.Scheduler's internal appointment id


@dataclass
class PlanningBoard:
    """State and behaviour; ``FakeDime`` routes HTTP to it and exposes it as ``dime.board``."""

    duplicates: int = 1
    reorder: bool = False
    seed: int | None = None
    hook_id_in: str = "both"
    listing_shape: str = "pascal"
    max_hooks: int = 50
    fail_rate: float = 0.0  # share of attempts that fail on the way (kept for retry_deliveries)
    retries: int = 3  # per delivery, with exponential backoff and jitter (DSWBHK020)
    backoff_seconds: float = 2.0  # the first retry's delay; doubled per retry, plus up to 50 % jitter
    backoff_sleep: Callable[[float], None] | None = None  # None: record the delays, wait for none
    breaker_after: int = 5  # deliveries in a row failing every attempt that open the breaker (DSWBHK030)
    time_zone: str = "UTC"  # the board's zone: connectors publish local wall-clock times in it
    resources_shape: str = "flat"  # connectors' Resources items: "flat", "nested" or "number"
    connector_guid: bool = True  # whether connectors' payloads carry AppointmentGuid besides Id
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    appointments: dict[str, _Planned] = field(default_factory=dict)
    hooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    connectors: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[Publication] = field(default_factory=list)
    failed: list[Publication] = field(default_factory=list)
    delivered: list[Publication] = field(default_factory=list)
    open_breakers: set[str] = field(default_factory=set)  # URLs nothing is sent to any more

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._rng = random.Random(self.seed)
        self._numbers = 0
        self._clock = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
        self._failing: dict[str, int] = {}  # URL → deliveries in a row that failed every attempt

    # ------------------------------------------------------------ planner helpers
    def add_resource(self, resource_no: str, email: str | None, exchange_enabled: bool = True, name: str = "") -> None:
        with self._lock:
            self.resources[resource_no] = {
                "resourceNo": resource_no,
                "email": email,
                "exchangeIntegrationEnabled": exchange_enabled,
                "displayName": name or resource_no,
                "sourceApp": "BC",
                "sourceType": "RESOURCE",
            }

    def _tick(self) -> datetime:
        self._clock += timedelta(seconds=1)  # LastModifiedDate strictly increases per action
        return self._clock

    def plan(
        self,
        subject: str,
        start: datetime,
        end: datetime,
        resources: list[str],
        *,
        body: str = "",
        importance: int = 0,
        job_no: str = "JOB-1",
        task_no: str = "TASK-1",
        source_app: str = "BC",
        category: str | None = None,
        time_marker: str | None = None,
        guid: str | None = None,
    ) -> str:
        with self._lock:
            self._numbers += 1
            now = self._tick()
            planned = _Planned(
                guid or str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                f"APP-{self._numbers:05d}",
                subject,
                body,
                start,
                end,
                importance,
                job_no,
                task_no,
                source_app,
                category,
                time_marker,
                list(resources),
                now,
                now,
                1212993 + self._numbers,  # the connector payload's Id (hbulens/dela shows 1212993)
            )
            self.appointments[planned.guid] = planned
            self._publish(planned, "created")
            return planned.guid

    def update(self, guid: str, **changes: Any) -> None:
        """Move (start/end), reassign (resources), or edit any other field; publishes "updated"."""
        with self._lock:
            planned = self.appointments[guid]
            for key, value in changes.items():
                if not hasattr(planned, key):
                    raise KeyError(key)
                setattr(planned, key, list(value) if key == "resources" else value)
            planned.modified = self._tick()
            self._publish(planned, "updated")

    def delete(self, guid: str) -> None:
        with self._lock:
            planned = self.appointments.pop(guid)
            planned.modified = self._tick()
            self._publish(planned, "deleted")

    def add_connector(
        self,
        url: str,
        source_app: str = "BC",
        auth: tuple[str, str] | None = None,
        crud: tuple[str, ...] = ("created", "updated"),
    ) -> None:
        """A Webhook connector; ``crud`` = the changes it posts (created, updated, deleted)."""
        unknown = set(crud) - set(HOOK_NAMES)
        if unknown or not crud:
            raise ValueError(f"crud must name created, updated or deleted, not {sorted(unknown)}")
        with self._lock:
            self.connectors.append({"url": url, "sourceApp": source_app, "auth": auth, "crud": tuple(crud)})

    # ------------------------------------------------------------ publications
    def payload(self, planned: _Planned) -> dict[str, Any]:
        """The ``appointment-incoming`` schema (PascalCase), with offsets on the dates."""
        return {
            "id": planned.id,
            "appointmentNo": planned.number,
            "AppointmentGuid": planned.guid,
            "Subject": planned.subject,
            "Body": planned.body,
            "StartDate": planned.start.isoformat(),
            "EndDate": planned.end.isoformat(),
            "Importance": planned.importance,
            "Locked": False,
            "LastModifiedDate": planned.modified.isoformat(),
            "CreatedDate": planned.created.isoformat(),
            "Task": {
                "TaskNo": planned.task_no,
                "Job": {"SourceApp": planned.source_app, "SourceType": "JOB", "JobNo": planned.job_no},
            },
            "Category": {"DisplayName": planned.category, "Color": "#1E90FF"} if planned.category else None,
            "TimeMarker": {"Name": planned.time_marker, "Color": "#FFD700"} if planned.time_marker else None,
            "Assignments": [
                {
                    "ResourceId": index + 1,
                    "Resource": {
                        "ResourceNo": number,
                        "Email": (self.resources.get(number) or {}).get("email"),
                        "DisplayName": (self.resources.get(number) or {}).get("displayName", number),
                        "SourceApp": "BC",
                        "SourceType": "RESOURCE",
                    },
                }
                for index, number in enumerate(planned.resources)
            ],
        }

    def _local(self, moment: datetime) -> str:
        """Wall-clock time in the board's zone, without an offset, as the connector posts it."""
        zone = UTC if self.time_zone.upper() == "UTC" else ZoneInfo(self.time_zone)
        return moment.astimezone(zone).replace(tzinfo=None).isoformat()

    def connector_payload(self, planned: _Planned) -> dict[str, Any]:
        """What a Webhook connector posts (the hbulens/dela README): Id, local times, Resources."""
        resources: list[Any] = []
        for index, number in enumerate(planned.resources):
            record = self.resources.get(number) or {}
            flat = {
                "ResourceNo": number,
                "Email": record.get("email"),
                "DisplayName": record.get("displayName", number),
            }
            if self.resources_shape == "nested":
                resources.append({"ResourceId": index + 1, "Resource": flat})
            elif self.resources_shape == "number":
                resources.append(number)
            else:
                resources.append(flat)
        category = {"Name": planned.category, "Color": "#ff0000"} if planned.category else None
        payload: dict[str, Any] = {
            "Id": planned.id,
            "AppointmentNo": planned.number,
            "StartDate": self._local(planned.start),
            "EndDate": self._local(planned.end),
            "Subject": planned.subject,
            "Body": planned.body,
            "Importance": planned.importance,
            "CreatedUser": "planner@contoso.com",
            "LastModifiedDate": self._local(planned.modified),
            "Resources": resources,
            "Task": {
                "TaskNo": planned.task_no,
                "Description": planned.subject,
                "Job": {"JobNo": planned.job_no, "Description": planned.job_no, "SourceApp": planned.source_app},
                "Category": category,
            },
            "Category": category,
            "TimeMarker": {"Name": planned.time_marker, "Color": "#FFD700"} if planned.time_marker else None,
        }
        if self.connector_guid:
            payload["AppointmentGuid"] = planned.guid
        return payload

    def _publish(self, planned: _Planned, change: str) -> None:
        targets: list[tuple[str, tuple[str, str] | None, dict[str, Any]]] = []
        for hook in self.hooks.values():
            if hook["change"] == change and hook["sourceApp"].lower() == planned.source_app.lower():
                targets.append((hook["notificationURL"], None, self.payload(planned)))
        for connector in self.connectors:
            if change in connector["crud"] and connector["sourceApp"].lower() == planned.source_app.lower():
                targets.append((connector["url"], connector["auth"], self.connector_payload(planned)))
        for url, auth, payload in targets:
            for _ in range(max(1, self.duplicates)):
                self.outbox.append(Publication(url, copy.deepcopy(payload), auth))

    def flush(self) -> list[int]:
        """Deliver the outbox (shuffled when ``reorder``); non-200 answers wait in ``failed``."""
        with self._lock:
            batch, self.outbox = self.outbox, []
            if self.reorder:
                self._rng.shuffle(batch)
        return [self._deliver(p) for p in batch]

    def retry_deliveries(self) -> list[int]:
        """Dime.Scheduler's retry job: send every failed delivery again (not past an open breaker)."""
        with self._lock:
            batch, self.failed = self.failed, []
        return [self._deliver(p) for p in batch]

    def close_breaker(self, url: str | None = None) -> None:
        """Close the breaker of one URL (or all): deliveries resume."""
        with self._lock:
            for target in [url] if url else list(self.open_breakers):
                self.open_breakers.discard(target)
                self._failing.pop(target, None)

    def _deliver(self, publication: Publication) -> int:
        """One delivery: up to 1 + ``retries`` attempts with backoff; a non-200 after all of them
        keeps it in ``failed`` and counts towards the URL's breaker."""
        with self._lock:
            if publication.url in self.open_breakers:
                publication.status = 0
                self.failed.append(publication)
                return 0
        status = 0
        for attempt in range(1 + max(0, self.retries)):
            if attempt:
                delay = self.backoff_seconds * 2 ** (attempt - 1) * (1 + self._rng.random() / 2)
                publication.backoffs.append(delay)
                if self.backoff_sleep is not None:
                    self.backoff_sleep(delay)
            status = self._attempt(publication)
            if status == 200:
                break
        with self._lock:
            if status == 200:
                self._failing.pop(publication.url, None)
                self.delivered.append(publication)
            else:
                self.failed.append(publication)
                self._failing[publication.url] = self._failing.get(publication.url, 0) + 1
                if self._failing[publication.url] >= self.breaker_after:
                    self.open_breakers.add(publication.url)
        return status

    def _attempt(self, publication: Publication) -> int:
        headers = {}
        if publication.auth:
            token = base64.b64encode(f"{publication.auth[0]}:{publication.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        publication.attempts += 1
        if self.fail_rate and self._rng.random() < self.fail_rate:
            status = 0  # lost on the way (connection reset)
        else:
            try:
                status = httpx.post(
                    publication.url, json=publication.payload, headers=headers, timeout=30.0
                ).status_code
            except httpx.HTTPError:
                status = 0
        publication.status = status
        publication.statuses.append(status)
        return status

    # ------------------------------------------------------------ HTTP
    def route(self, request: Request, route: str) -> Response | None:
        """Serve /resource, /webhooks/... and GET /appointment; None when not ours."""
        if route == "/resource" and request.method == "GET":
            with self._lock:
                return Response(200, copy.deepcopy(list(self.resources.values())))
        if route.startswith("/webhooks/"):
            return self._webhooks(request, request.segments[1:])  # original case: hook ids are case-sensitive
        if route == "/appointment" and request.method == "GET":
            return self._listing(request)
        if route.startswith("/appointment/") and request.method == "GET":
            return self._by_id(route.rsplit("/", 1)[-1])
        return None

    def _by_id(self, appointment_id: str) -> Response:
        with self._lock:
            found = next((p for p in self.appointments.values() if str(p.id) == appointment_id), None)
            if found is None:
                return Response(404, {"message": f"Appointment {appointment_id[:20]} not found."})
            item = self._listed(found)
        return Response(200, {"value": [item]} if self.listing_shape == "envelope" else item)

    def _webhooks(self, request: Request, parts: list[str]) -> Response:
        change = HOOK_TYPES.get(parts[0].lower()) if parts else None
        if change is None:
            return Response(404, {"message": "No such webhook type."})
        with self._lock:
            if len(parts) == 1 and request.method == "POST":
                body = request.json if isinstance(request.json, dict) else {}
                missing = [k for k in ("sourceApp", "notificationURL", "resource", "changeType") if not body.get(k)]
                if missing:
                    return Response(400, {"message": f"Missing {', '.join(missing)}."})
                if len(self.hooks) >= self.max_hooks:
                    return Response(429, {"message": "More than expected number of webhooks have been created."})
                hook_id = uuid.uuid4().hex
                self.hooks[hook_id] = {**body, "change": change, "type": HOOK_NAMES[change]}
                location = f"/webhooks/{HOOK_NAMES[change]}/{hook_id}"
                headers = {"Location": location} if self.hook_id_in in ("location", "both") else {}
                answer = {"id": hook_id} if self.hook_id_in in ("body", "both") else None
                return Response(201, answer, headers)
            if len(parts) == 2 and request.method == "DELETE":
                if self.hooks.pop(parts[1], None) is None:
                    return Response(404, {"message": "No such webhook."})
                return Response(200, {"message": "Deleted."})
        return Response(405, {"message": "Method not allowed."})

    def _listing(self, request: Request) -> Response:
        query = parse_qs(urlsplit(request.raw_target).query)
        try:
            start = datetime.fromisoformat(query["startDate"][0].replace("Z", "+00:00"))
            end = datetime.fromisoformat(query["endDate"][0].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return Response(400, {"message": "startDate and endDate are required ISO 8601 date-times."})
        wanted = set(query.get("resources", []))
        with self._lock:
            found = [
                p
                for p in self.appointments.values()
                if p.start < end and p.end > start and (not wanted or wanted & set(p.resources))
            ]
            items = [self._listed(p) for p in found]
        return Response(200, {"value": items} if self.listing_shape == "envelope" else items)

    def _listed(self, planned: _Planned) -> dict[str, Any]:
        if self.listing_shape != "flat":
            return self.payload(planned)
        return {
            "id": planned.id,
            "appointmentGuid": planned.guid,
            "appointmentNo": planned.number,
            "subject": planned.subject,
            "body": planned.body,
            "start": planned.start.isoformat(),
            "end": planned.end.isoformat(),
            "importance": planned.importance,
            "lastModifiedDate": planned.modified.isoformat(),
            "sourceApp": planned.source_app,
            "jobNo": planned.job_no,
            "taskNo": planned.task_no,
            "category": planned.category,
            "timeMarker": planned.time_marker,
            "resources": [
                {"resourceNo": r, "email": (self.resources.get(r) or {}).get("email")} for r in planned.resources
            ],
        }
