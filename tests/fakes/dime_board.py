"""The planning board half of ``FakeDime``: planner operations, resources, hooks and publications.

Follows ``/work/shared/reference/dime-to-outlook.md`` (facts from the vendor's webhook docs,
"integrations/webhook", and the published API description ``dimescheduler-api.swagger.json``):

* **Publications**: "the full appointment schema is published every time you act on the planning
  board", as the PascalCase ``appointment-incoming`` schema (``AppointmentGuid``, ``StartDate``,
  ``Task {TaskNo, Job {SourceApp, SourceType, JobNo}}``, ``Category``, ``TimeMarker``,
  ``Assignments [{Resource {ResourceNo, Email}}]``, ``LastModifiedDate``). It carries no change
  type: the hook URL (or our route) tells created/updated/deleted.
* **Delivery**: a delivery counts on HTTP 200 and nothing else; failed ones (any other answer,
  or ``fail_rate`` of them lost on the way) are kept and sent again by ``retry_deliveries()``
  (Dime.Scheduler's timer job). Cadence and ordering are
  undocumented, so the fake sends ``duplicates`` copies and can shuffle (``reorder``).
* **Hooks** (swagger): ``POST /webhooks/AppointmentCreated|Updated|Deleted`` with
  ``{sourceApp, notificationURL, resource: "Appointments", changeType: [...]}`` → 201, 429 past
  ``max_hooks``; ``DELETE /webhooks/<type>/{hookId}``. Where the 201 carries the hook id is
  **unverified**: ``hook_id_in`` plays ``"location"``, ``"body"`` or ``"both"``.
* **Connectors** (the Webhook connector configured in Dime.Scheduler's UI, routed per source
  app): ``add_connector`` publishes to one URL, optionally with Basic credentials, the changes of
  its CRUD types (the vendor's .NET SDK, ``src/Models/Connector/Connector.cs``: ``CrudTypes``, a
  set of ``Crud.Create`` "I", ``Crud.Update`` "U", ``Crud.Delete`` "D"; dime-to-outlook.md: a
  connector with "D" ticked posts deletes with the same schema and nothing saying "deleted").
  ``crud`` defaults to create and update (one connector: deletes not distinguishable); one
  connector per CRUD type, each with its own ``/publications/{change}`` URL, makes them explicit.
* ``GET /resource`` lists ``resourceNo``, ``email``, ``exchangeIntegrationEnabled``;
  ``GET /appointment?startDate&endDate&resources=…`` lists planned appointments; its answer's
  shape is **unverified**: ``listing_shape`` plays ``"pascal"`` (the publication schema),
  ``"flat"`` (camelCase) or ``"envelope"`` ({"value": [...]}).
"""

from __future__ import annotations

import base64
import copy
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
    status: int = 0  # last answer; 0 = not delivered yet or unreachable


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


@dataclass
class PlanningBoard:
    """State and behaviour; ``FakeDime`` routes HTTP to it and exposes it as ``dime.board``."""

    duplicates: int = 1
    reorder: bool = False
    seed: int | None = None
    hook_id_in: str = "both"
    listing_shape: str = "pascal"
    max_hooks: int = 50
    fail_rate: float = 0.0  # share of deliveries that fail on the way (kept for retry_deliveries)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    appointments: dict[str, _Planned] = field(default_factory=dict)
    hooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    connectors: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[Publication] = field(default_factory=list)
    failed: list[Publication] = field(default_factory=list)
    delivered: list[Publication] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._rng = random.Random(self.seed)
        self._numbers = 0
        self._clock = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

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
            "id": abs(hash(planned.guid)) % 1_000_000,
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

    def _publish(self, planned: _Planned, change: str) -> None:
        payload = self.payload(planned)
        targets: list[tuple[str, tuple[str, str] | None]] = []
        for hook in self.hooks.values():
            if hook["change"] == change and hook["sourceApp"].lower() == planned.source_app.lower():
                targets.append((hook["notificationURL"], None))
        for connector in self.connectors:
            if change in connector["crud"] and connector["sourceApp"].lower() == planned.source_app.lower():
                targets.append((connector["url"], connector["auth"]))
        for url, auth in targets:
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
        """Dime.Scheduler's timer job: send every failed delivery again."""
        with self._lock:
            batch, self.failed = self.failed, []
        return [self._deliver(p) for p in batch]

    def _deliver(self, publication: Publication) -> int:
        headers = {}
        if publication.auth:
            token = base64.b64encode(f"{publication.auth[0]}:{publication.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        publication.attempts += 1
        if self.fail_rate and self._rng.random() < self.fail_rate:
            status = 0  # lost on the way (connection reset): Dime.Scheduler keeps it for its retry job
            publication.status = status
            with self._lock:
                self.failed.append(publication)
            return status
        try:
            status = httpx.post(publication.url, json=publication.payload, headers=headers, timeout=30.0).status_code
        except httpx.HTTPError:
            status = 0
        publication.status = status
        with self._lock:
            (self.delivered if status == 200 else self.failed).append(publication)
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
        return None

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
