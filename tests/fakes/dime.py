"""``FakeDime``: a stateful, loopback Dime.Scheduler API for connector tests and offline demos.

Why a fake: the connector writes Outlook events to the planning board through ``POST /import``
with the Exchange procedures, and must treat an HTTP 200 whose *inner* ``statusCode`` is not 200 as
a failure. The fake keeps a board (appointment GUID → last upserted parameters) and follows the
vendor's .NET SDK (https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Models/Exchange/ExchangeAppointment.cs,
https://github.com/dime-scheduler/sdk-dotnet/tree/main/src/Import) and API description
(https://github.com/dime-scheduler/powerplatform-connector/blob/main/src/apiDefinition.swagger.json): X-API-KEY auth,
string-only parallel arrays,
``yyyy-MM-dd HH:mm:ssZ`` dates, integer enumerations, the response envelope, idempotent upserts
and deletes, and throttling/outage faults.

Deliberate choices:

* All calls of one ``/import`` request are applied atomically, in order: if one fails, the board is
  left untouched and the inner failure names the failing call.
* A delayed request is still applied after the delay, so a client that timed out has nevertheless
  changed the board (exactly the case idempotent retries must survive).
* The REST ``/appointment`` routes keep their own store (``rest_appointments``), separate from the
  board the Exchange procedures write.
* The planning board (``dime.board``, ``tests/fakes/dime_board.py``) plans appointments, publishes
  them to registered hooks and connectors, and serves ``GET /resource``, ``GET /appointment``
  (its planned appointments, before the REST store's) and the ``/webhooks`` routes.

What the Exchange import enforces (the SDK's ``ExchangeAppointment``, https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Models/Exchange/ExchangeAppointment.cs):

* ``AppointmentId`` is the first parameter, always sent, a long as text: "0" when unknown, else
  the id this fake answered in ``Appointments[].Id`` for that GUID (another id is refused).
* ``mboc_deleteExchangeAppointment`` gets the upsert's parameter set with its typed values: a
  ``""`` date, enumeration or boolean is refused.
* Answers: ``envelope_keys`` plays the envelope's key casing ("camel" as seen, or "pascal": the
  .NET SDK reads keys case-insensitively); ``fail_next(success_false=True)`` answers a 200 whose
  inner status is 200 but whose content says ``"Success": false`` with an ``Error``.
* ``deadlock_next``: the import's SQL transaction is chosen as a deadlock victim (SQL Server
  error 1205). Its message is SQL Server's own text for 1205 (sys.messages; the one seen from
  Dime.Scheduler, docs/verification.md); in which envelope it arrives is unverified, so
  every plausible one is played: inner ``statusCode`` 400 (as a failed call here), 500, or a 200
  whose content says ``"Success": false``. Nothing is applied; the next import succeeds.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ._http import FaultInjector, LoopbackServer, RecordedRequest, Request, Response
from .dime_board import PlanningBoard

__all__ = ["DELETE", "UPSERT", "FakeDime"]

UPSERT = "mboc_upsertExchangeAppointment"
DELETE = "mboc_deleteExchangeAppointment"

_TYPED = ("Start", "End", "Importance", "ShowAs", "Sensitivity", "CreatedByExchange")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z$")
_ENUMS = {"ShowAs": (1, 6), "Sensitivity": (1, 4), "Importance": (0, 2)}
SQL_DEADLOCK_MESSAGE = (
    "Transaction (Process ID 57) was deadlocked on lock resources with another process and has been chosen as "
    "the deadlock victim. Rerun the transaction."
)


class _CallFailed(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error, self.description = error, description


def _parse_exchange_date(value: str) -> datetime:
    if not _DATE.match(value):
        raise ValueError(value)
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)


def _parse_iso(value: Any) -> datetime:
    text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"message": message}, headers or {})


def envelope(content: dict[str, Any], status_code: int, keys: str = "camel") -> dict[str, Any]:
    """The SDK-visible envelope: the real answer is a JSON *string* inside ``content``."""
    if keys == "pascal":
        return {"Content": json.dumps(content), "ContentType": "application/json", "StatusCode": status_code}
    return {"content": json.dumps(content), "contentType": "application/json", "statusCode": status_code}


class _Staged:
    """The writes of one ``/import`` request, kept aside until all its calls succeeded."""

    def __init__(self, board: dict[str, dict[str, str]]) -> None:
        self._board = board
        self._writes: dict[str, dict[str, str] | None] = {}  # None: deleted

    def put(self, guid: str, params: dict[str, str]) -> None:
        self._writes[guid] = params

    def delete(self, guid: str) -> None:
        self._writes[guid] = None

    def commit(self) -> None:
        for guid, params in self._writes.items():
            if params is None:
                self._board.pop(guid, None)
            else:
                self._board[guid] = params


class FakeDime(LoopbackServer):
    """A loopback Dime.Scheduler: ``POST /import`` with the Exchange procedures, plus simple
    ``/appointment`` REST routes. Start it per test (``with FakeDime() as dime:``)."""

    def __init__(
        self,
        api_key: str = "test-api-key",
        known_resources: Iterable[str] | None = None,
        envelope_keys: str = "camel",
        board: PlanningBoard | None = None,
    ) -> None:
        """
        Args:
            api_key: the value every request must carry in ``X-API-KEY``.
            known_resources: e-mails of resources that exist in Dime.Scheduler (case-insensitive);
                None accepts any e-mail. Settable later through the attribute of the same name.
            envelope_keys: "camel" (``content``/``statusCode``) or "pascal" (``Content``/``StatusCode``).
        """
        super().__init__()
        self.api_key = api_key
        self.known_resources: set[str] | None = (
            None if known_resources is None else {e.lower() for e in known_resources}
        )
        self.envelope_keys = envelope_keys
        self._success_false = 0
        self._deadlocks: list[int] = []  # inner statuses of the next deadlocked imports
        self._lock = threading.RLock()
        self._faults = FaultInjector()
        self._board: dict[str, dict[str, str]] = {}
        self._ids: dict[str, int] = {}
        self._rest: dict[str, dict[str, Any]] = {}
        self._refused: dict[str, tuple[str, str]] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.writes: int = 0
        self.requests: list[RecordedRequest] = []
        self.board = board or PlanningBoard()

    def __enter__(self) -> FakeDime:
        return self.start()  # type: ignore[return-value]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return self.origin

    # ---------------------------------------------------------------- accessors
    @property
    def appointments(self) -> dict[str, dict[str, str]]:
        """The board: AppointmentGuid → parameters of the last upsert (a deep copy)."""
        with self._lock:
            return copy.deepcopy(self._board)

    @property
    def rest_appointments(self) -> dict[str, dict[str, Any]]:
        """Appointments written through the REST routes: appointmentGuid → object (a copy)."""
        with self._lock:
            return copy.deepcopy(self._rest)

    def reset_calls(self) -> None:
        """Forget ``calls``, ``writes`` and ``requests`` (the board stays)."""
        with self._lock:
            self.calls.clear()
            self.writes = 0
            self.requests.clear()

    def add_resource(self, email: str) -> None:
        """Make an e-mail known (turns on resource checking if it was off)."""
        with self._lock:
            if self.known_resources is None:
                self.known_resources = set()
            self.known_resources.add(email.lower())

    # ---------------------------------------------------------------- faults
    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: int | None = None,
        inner_status: int | None = None,
        success_false: bool = False,
        path_contains: str | None = None,
    ) -> None:
        """The next ``count`` requests fail before touching the board: with HTTP ``status``
        (plus ``Retry-After`` when given; a 429 always has one, 1 s by default), or, with
        ``inner_status``, HTTP 200 carrying an inner failure envelope whose ``statusCode`` is
        ``inner_status``. ``success_false``: HTTP 200, inner 200, content ``"Success": false``.
        ``path_contains``: only requests whose path contains it (e.g. "/import") count."""
        if success_false:
            with self._lock:
                self._success_false += count
            return
        self._faults.add_fault(count, status, retry_after, path_contains, None, inner_status)

    def deadlock_next(self, count: int = 1, inner_status: int = 400) -> None:
        """The next ``count`` imports are deadlock victims (SQL error 1205), answered HTTP 200 with
        that inner ``statusCode`` (200: ``"Success": false``); the board is not touched."""
        with self._lock:
            self._deadlocks.extend([inner_status] * count)

    def refuse_call(self, guid: str, error: str, description: str) -> None:
        """Every call for this appointment GUID fails with ``error``/``description`` (a call the
        service refuses for reasons of its own, e.g. a value its validation rejects): its request
        fails as a whole (the deliberate choice above) with the failure content of
        the SDK (https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Import/Response/ImportResponse.cs), naming
        the call."""
        with self._lock:
            self._refused[guid] = (error, description)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Answer the next ``count`` requests after ``seconds`` (they are still applied)."""
        self._faults.add_delay(seconds, count, None)

    def fault_rate(
        self,
        rate: float,
        statuses: Iterable[int] = (500, 503),
        seed: int | None = None,
        retry_after: int | None = 1,
    ) -> None:
        """Random HTTP faults with probability ``rate`` (0 = off); 429/503 carry ``Retry-After``."""
        self._faults.set_rate(rate, statuses, seed, retry_after)

    def clear_faults(self) -> None:
        self._faults.clear()

    # ---------------------------------------------------------------- HTTP
    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(RecordedRequest.of(request))
        if request.headers.get("x-api-key") != self.api_key:
            return _message(401, "Unauthorized: a valid X-API-KEY header is required.")
        self.sleep(self._faults.take_delay(request.path, request.raw_target))
        fault = self._faults.take_fault(request.path, request.raw_target)
        if fault is not None:
            if fault.inner_status is not None:
                content = {"Error": "Internal server error", "Description": "Injected inner failure."}
                return Response(200, envelope(content, fault.inner_status, self.envelope_keys))
            retry_after = fault.retry_after
            if retry_after is None and fault.status == 429:
                retry_after = 1  # Dime.Scheduler's 429 always says when to come back
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return _message(fault.status, f"Injected fault {fault.status}.", headers)
        route = request.path.lower().rstrip("/")
        served = self.board.route(request, route)
        if served is not None:
            if route == "/appointment" and isinstance(served.body, list):
                served.body = served.body + self._rest_list(request).body  # the REST store's too
            return served
        with self._lock:
            refuse, self._success_false = self._success_false > 0, max(0, self._success_false - 1)
        if refuse and route == "/import":
            content = {"Success": False, "Error": "Import failed", "Message": "Injected failure in a 200."}
            return Response(200, envelope(content, 200, self.envelope_keys))
        with self._lock:
            deadlock = self._deadlocks.pop(0) if self._deadlocks and route == "/import" else None
        if deadlock is not None:
            content = {"Error": SQL_DEADLOCK_MESSAGE, "Description": "Call 0 (mboc_upsertExchangeAppointment) failed."}
            if deadlock == 200:
                content["Success"] = False
            return Response(200, envelope(content, deadlock, self.envelope_keys))
        if route == "/import":
            if request.method != "POST":
                return _message(405, "Method not allowed.")
            return self._import(request)
        if route == "/appointment":
            if request.method in ("POST", "PUT"):
                return self._rest_upsert(request, create=request.method == "POST")
            if request.method == "DELETE":
                return self._rest_delete(request)
            if request.method == "GET":
                return self._rest_list(request)
            return _message(405, "Method not allowed.")
        return _message(404, f"No route for {request.method} {request.path}.")

    # ---------------------------------------------------------------- /import
    def _import(self, request: Request) -> Response:
        body = request.json
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or not body:
            return _message(400, "The body must be an import call or a non-empty array of them.")
        parsed: list[tuple[str, dict[str, str]]] = []
        for i, call in enumerate(body):
            if not isinstance(call, dict):
                return _message(400, f"Call {i} is not an object.")
            proc = call.get("StoredProcedureName")
            names = call.get("ParameterNames")
            values = call.get("ParameterValues")
            if not isinstance(proc, str) or not proc:
                return _message(400, f"Call {i}: StoredProcedureName is required.")
            if not isinstance(names, list) or not isinstance(values, list):
                return _message(400, f"Call {i}: ParameterNames and ParameterValues must be arrays.")
            if len(names) != len(values):
                return _message(400, f"Call {i}: ParameterNames and ParameterValues differ in length.")
            if not all(isinstance(n, str) for n in names) or not all(isinstance(v, str) for v in values):
                return _message(400, f"Call {i}: every parameter name and value must be a string.")
            if proc in (UPSERT, DELETE) and names[:1] != ["AppointmentId"]:
                return _message(400, f'Call {i}: AppointmentId must be the first parameter ("0" when unknown).')
            parsed.append((proc, dict(zip(names, values, strict=True))))
        with self._lock:
            # The calls are staged on a view of the board (only the rows they touch), applied at
            # once if all succeed: atomic without copying the whole board per request.
            board = _Staged(self._board)
            results: list[dict[str, Any]] = []
            failure: _CallFailed | None = None
            for i, (proc, params) in enumerate(parsed):
                self.calls.append((proc, dict(params)))
                if proc in (UPSERT, DELETE):
                    self.writes += 1
                if failure is not None:
                    continue
                try:
                    results.append(self._apply(board, proc, params))
                except _CallFailed as exc:
                    failure = _CallFailed(exc.error, f"Call {i} ({proc}): {exc.description}")
            if failure is not None:
                content = {"Error": failure.error, "Description": failure.description}
                return Response(200, envelope(content, 400, self.envelope_keys))
            board.commit()
            content = {
                "Success": True,
                "Message": f"{len(parsed)} call(s) imported.",
                "Status": 1,
                "Appointments": results,
            }
            return Response(200, envelope(content, 200, self.envelope_keys))

    def _appointment_id(self, guid: str) -> int:
        if guid not in self._ids:
            self._ids[guid] = 1000 + len(self._ids)
        return self._ids[guid]

    def _apply(self, board: _Staged, proc: str, params: dict[str, str]) -> dict[str, Any]:
        """Validate and apply one call to ``board`` (staged until the request succeeds). Caller holds the lock."""
        if proc not in (UPSERT, DELETE):
            raise _CallFailed("Unknown procedure", f"Stored procedure '{proc}' does not exist.")
        guid = params.get("AppointmentGuid", "").strip()
        if not guid:
            raise _CallFailed("Invalid parameter", "AppointmentGuid is required.")
        if guid in self._refused:
            raise _CallFailed(*self._refused[guid])
        appointment_id = params.get("AppointmentId", "")
        if not re.fullmatch(r"\d+", appointment_id):
            raise _CallFailed("Invalid parameter", f"AppointmentId must be a number, got '{appointment_id}'.")
        if appointment_id != "0" and guid in self._ids and int(appointment_id) != self._ids[guid]:
            raise _CallFailed("Invalid parameter", f"AppointmentId {appointment_id} is not appointment '{guid}'.")
        if proc == DELETE:
            empty = [name for name in _TYPED if params.get(name, "") == ""]
            if empty:
                raise _CallFailed("Invalid parameter", f"Typed values must not be empty: {', '.join(empty)}.")
            board.delete(guid)  # deleting an unknown appointment succeeds: deletes are idempotent
            return {"Id": self._appointment_id(guid), "Guid": guid}
        try:
            start = _parse_exchange_date(params.get("Start", ""))
            end = _parse_exchange_date(params.get("End", ""))
        except ValueError:
            raise _CallFailed("Invalid date", "Start and End must be formatted 'yyyy-MM-dd HH:mm:ssZ'.") from None
        if end < start:
            raise _CallFailed("Invalid date range", "End is before Start.")
        for name, (low, high) in _ENUMS.items():
            if name in params:
                value = params[name]
                if not re.fullmatch(r"-?\d+", value) or not low <= int(value) <= high:
                    raise _CallFailed(
                        "Invalid parameter", f"{name} must be an integer from {low} to {high}, got '{value}'."
                    )
        email = params.get("ResourceEmail", "").strip()
        if not email:
            raise _CallFailed("Invalid parameter", "ResourceEmail is required.")
        if self.known_resources is not None and email.lower() not in self.known_resources:
            raise _CallFailed("Resource not found", f"No resource with e-mail '{email}'.")
        board.put(guid, dict(params))
        return {"Id": self._appointment_id(guid), "Guid": guid}

    # ---------------------------------------------------------------- REST /appointment
    @staticmethod
    def _objects(request: Request) -> list[dict[str, Any]] | None:
        body = request.json
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or not body or not all(isinstance(o, dict) for o in body):
            return None
        return body

    def _rest_upsert(self, request: Request, *, create: bool) -> Response:
        objects = self._objects(request)
        if objects is None:
            return _message(400, "The body must be an appointment or an array of appointments.")
        with self._lock:
            store = copy.deepcopy(self._rest)
            for obj in objects:
                guid = str(obj.get("appointmentGuid") or "").strip()
                if not guid:
                    return _message(400, "appointmentGuid is required.")
                if not create and guid not in store:
                    return _message(404, f"Appointment '{guid}' not found.")
                merged = {**store.get(guid, {}), **copy.deepcopy(obj)}
                if create and guid not in store and not (merged.get("start") and merged.get("end")):
                    return _message(400, "start and end are required.")
                try:
                    if _parse_iso(merged["end"]) < _parse_iso(merged["start"]):
                        return _message(400, "end is before start.")
                except (KeyError, ValueError):
                    return _message(400, "start and end must be ISO 8601 date-times.")
                store[guid] = merged
                self.writes += 1
            self._rest = store
            return Response(200, [copy.deepcopy(store[str(o["appointmentGuid"]).strip()]) for o in objects])

    def _rest_delete(self, request: Request) -> Response:
        objects = self._objects(request)
        if objects is None:
            return _message(400, "The body must be an appointment or an array of appointments.")
        with self._lock:
            for obj in objects:
                guid = str(obj.get("appointmentGuid") or "").strip()
                if not guid:
                    return _message(400, "appointmentGuid is required.")
            for obj in objects:
                self._rest.pop(str(obj["appointmentGuid"]).strip(), None)
                self.writes += 1
        return Response(200, {"message": f"{len(objects)} appointment(s) deleted."})

    def _rest_list(self, request: Request) -> Response:
        try:
            start = _parse_iso(request.query["startDate"]) if "startDate" in request.query else None
            end = _parse_iso(request.query["endDate"]) if "endDate" in request.query else None
        except ValueError:
            return _message(400, "startDate and endDate must be ISO 8601 date-times.")
        with self._lock:
            out = []
            for appt in self._rest.values():
                a_start, a_end = _parse_iso(appt["start"]), _parse_iso(appt["end"])
                if (end is None or a_start < end) and (start is None or a_end > start):
                    out.append(copy.deepcopy(appt))
        return Response(200, out)
