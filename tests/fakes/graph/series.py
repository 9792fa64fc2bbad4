"""Recurring series of ``FakeGraph``: masters with a pattern, occurrences, exceptions, cancellations.

Facts followed (https://learn.microsoft.com/graph/api/event-list-instances,
https://learn.microsoft.com/graph/delta-query-events; the master-only notification as observed, docs/verification.md):

* An edit of a series, or of one of its instances, is notified on the **series master** only
  (changeType updated, the master's id); occurrences and exceptions get no notifications of their own.
* ``GET /users/{id}/events/{masterId}/instances?startDateTime=…&endDateTime=…`` lists the
  occurrences and exceptions of the window (cancelled ones are absent), full data, paged.
* calendarView lists singles, occurrences and exceptions with full data (never the master); GET of
  an occurrence id returns the full occurrence.
* calendarView/delta lists occurrences as partial items (``id``, ``type``, ``seriesMasterId``,
  ``start``, ``end``, ``@odata.etag``); the master itself may be listed (first occurrence's times).

Deliberate choices (not Graph facts):

* An occurrence's id is derived from the master id and its original start, so it is stable; an
  occurrence carries its master's changeKey (a series edit changes every occurrence's changeKey).
* Editing an instance (helper or PATCH) turns it into an ``exception`` with its own changeKey and
  touches the master (the master item changes when an exception is stored, so it is notified).
* Changing the master's start, end or recurrence discards exceptions and cancellations (Outlook
  does this when the pattern changes); instances that disappear are reported ``@removed`` by delta.
* Patterns: ``daily`` and ``weekly`` (``interval``, ``daysOfWeek``), ranges ``endDate``,
  ``numbered`` and ``noEnd`` (expanded up to ``MAX_OCCURRENCES``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .._http import Request, Response
from .base import GraphBase
from .common import GraphError, _Event, _Series, format_utc, zone

MAX_OCCURRENCES = 800
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class SeriesMixin(GraphBase):
    """Series masters expanded into instances for calendarView, delta, GET and ``/instances``."""

    # ---------------------------------------------------------------- helpers (public)
    def create_series(
        self,
        mailbox_id: str,
        subject: str = "Stand-up",
        start: str | datetime = "2026-11-23T09:00:00",
        end: str | datetime = "2026-11-23T09:15:00",
        *,
        pattern: str = "daily",
        interval: int = 1,
        days_of_week: list[str] | None = None,
        count: int | None = None,
        until: str | date | None = None,
        time_zone: str = "UTC",
        **extra: Any,
    ) -> dict[str, Any]:
        """Create a series master whose first occurrence is ``start``–``end`` (local times in
        ``time_zone``); ``count`` occurrences, or until the date ``until``, else no end.
        Other keywords as ``create_event``. Returns the master's JSON (with ``recurrence``)."""
        first = self._helper_fields(dict(start=start, end=end, time_zone=time_zone))["start"]
        start_date = str(first["dateTime"])[:10]
        rng: dict[str, Any] = {"type": "noEnd", "startDate": start_date, "recurrenceTimeZone": time_zone}
        if count is not None:
            rng.update(type="numbered", numberOfOccurrences=int(count))
        elif until is not None:
            rng.update(type="endDate", endDate=str(until)[:10])
        pat: dict[str, Any] = {"type": pattern, "interval": int(interval), "firstDayOfWeek": "sunday"}
        if pattern == "weekly":
            pat["daysOfWeek"] = [d.lower() for d in (days_of_week or [])] or [
                _WEEKDAYS[date.fromisoformat(start_date).weekday()]
            ]
        return self.create_event(
            mailbox_id,
            subject,
            start,
            end,
            time_zone=time_zone,
            event_type="seriesMaster",
            recurrence={"pattern": pat, "range": rng},
            **extra,
        )

    def instances(self, mailbox_id: str, master_id: str) -> list[dict[str, Any]]:
        """Every instance of a series (occurrences and exceptions, without cancelled ones)."""
        with self._lock:
            master = self._require(mailbox_id, master_id)
            return [self._render(ev, expand=True) for ev in self._instances_of(master)]

    def update_instance(self, mailbox_id: str, instance_id: str, **changes: Any) -> dict[str, Any]:
        """Edit (e.g. move) one instance: it becomes an exception; the master is notified."""
        return self.update_event(mailbox_id, instance_id, **changes)

    def cancel_instance(self, mailbox_id: str, instance_id: str) -> None:
        """Delete one occurrence of a series; the master is notified (``updated``)."""
        self.delete_event(mailbox_id, instance_id)

    # ---------------------------------------------------------------- expansion
    def _pattern_of(self, ev: _Event) -> str | None:
        """What defines a master's occurrences (None for other events)."""
        if ev.data.get("type") != "seriesMaster":
            return None
        key = [ev.data.get("recurrence"), ev.start_utc.isoformat(), ev.end_utc.isoformat(), ev.start_zone]
        return json.dumps(key, sort_keys=True, default=str)

    def _is_instance(self, ev: _Event) -> bool:
        """An occurrence or exception of a series this fake holds (not a stored event of that type)."""
        master_id = ev.data.get("seriesMasterId")
        return ev.id not in self._events[ev.mailbox] and bool(master_id) and master_id in self._events[ev.mailbox]

    def _occurrence_starts(self, master: _Event) -> list[datetime]:
        """Original starts of a master's occurrences (none without a ``recurrence``)."""
        rec = master.data.get("recurrence")
        if not isinstance(rec, dict) or not rec:
            return []
        pattern, rng = rec.get("pattern") or {}, rec.get("range") or {}
        tz = zone(master.start_zone)
        first_local = master.start_utc.astimezone(tz)
        at = first_local.time().replace(tzinfo=None)
        try:
            start_date = date.fromisoformat(str(rng.get("startDate") or first_local.date().isoformat()))
            end_date = date.fromisoformat(str(rng["endDate"])) if rng.get("type") == "endDate" else None
        except (KeyError, ValueError):
            raise GraphError(400, "ErrorInvalidRequest", "Invalid recurrence range.") from None
        count = int(rng.get("numberOfOccurrences") or 0) if rng.get("type") == "numbered" else None
        interval = max(1, int(pattern.get("interval") or 1))
        kind = str(pattern.get("type") or "daily")
        if kind not in ("daily", "weekly"):
            raise GraphError(400, "ErrorInvalidRequest", f"Recurrence pattern '{kind}' is not supported by this fake.")
        days = {_WEEKDAYS.index(d.lower()) for d in pattern.get("daysOfWeek") or [] if d.lower() in _WEEKDAYS}
        days = days or {start_date.weekday()}
        week_zero = start_date - timedelta(days=(start_date.weekday() + 1) % 7)  # weeks start on Sunday
        out: list[datetime] = []
        day = start_date
        while len(out) < MAX_OCCURRENCES and (day - start_date).days < 3 * 366:
            if (end_date is not None and day > end_date) or (count is not None and len(out) >= count):
                break
            if kind == "daily":
                hit = (day - start_date).days % interval == 0
            else:
                hit = day.weekday() in days and ((day - week_zero).days // 7) % interval == 0
            if hit:
                out.append(datetime.combine(day, at, tzinfo=tz).astimezone(UTC))
            day += timedelta(days=1)
        return out

    @staticmethod
    def _occurrence_id(master_id: str, original_start: datetime) -> str:
        """Stable, and shaped like an immutable id (base64url with '-', '_' or not, one '=')."""
        seed = f"{master_id}|{original_start.isoformat()}".encode()
        raw = hashlib.sha512(seed).digest() + hashlib.sha256(seed).digest()[:4]  # 68 bytes → one '='
        return "AAkALgOc" + base64.urlsafe_b64encode(raw).decode("ascii")

    def _series_of(self, master: _Event) -> _Series:
        return self._series.setdefault(master.id, _Series())

    def _all_instances(self, master: _Event) -> Iterator[tuple[str, datetime]]:
        """(occurrence id, original start) of every instance the pattern defines."""
        for original in self._occurrence_starts(master):
            yield self._occurrence_id(master.id, original), original

    def _instances_of(self, master: _Event) -> list[_Event]:
        """Occurrences (rendered from the master) and exceptions, without cancelled ones."""
        series = self._series_of(master)
        duration = master.end_utc - master.start_utc
        out: list[_Event] = []
        for occ_id, original in self._all_instances(master):
            if occ_id in series.cancelled:
                continue
            exception = series.exceptions.get(occ_id)
            if exception is not None:
                out.append(exception)
                continue
            data = copy.deepcopy(master.data)
            data.pop("recurrence", None)
            data.update(id=occ_id, type="occurrence", seriesMasterId=master.id, originalStart=format_utc(original))
            out.append(
                _Event(
                    master.mailbox,
                    data,
                    original,
                    original + duration,
                    master.start_zone,
                    master.end_zone,
                    dict(master.ext_props),
                    master.seq,
                    master.calendar,
                )
            )
        return out

    def _masters(self, mailbox: str) -> list[_Event]:
        return [ev for ev in self._events[mailbox].values() if ev.data.get("type") == "seriesMaster"]

    def _lookup(self, mailbox: str, event_id: str) -> _Event | None:
        event_id = self.id_aliases.get(event_id, event_id)
        ev = self._events[mailbox].get(event_id)
        if ev is not None:
            return ev
        for master in self._masters(mailbox):
            for instance in self._instances_of(master):
                if instance.id == event_id:
                    return instance
        return None

    def _view_events(self, mailbox: str) -> list[_Event]:
        """What calendarView sees: singles and instances of the primary calendar, no masters."""
        out: list[_Event] = []
        for ev in self._events[mailbox].values():
            if ev.calendar != "primary":
                continue
            if ev.data.get("type") == "seriesMaster":
                out.extend(self._instances_of(ev))
            else:
                out.append(ev)
        return out

    def _series_span(self, master: _Event) -> tuple[datetime, datetime] | None:
        instances = self._instances_of(master)
        if not instances:
            return None
        return min(i.start_utc for i in instances), max(i.end_utc for i in instances)

    # ---------------------------------------------------------------- mutation (called by EventsMixin)
    def _update_instance(self, ev: _Event, fields: dict[str, Any]) -> None:
        master = self._events[ev.mailbox][str(ev.data["seriesMasterId"])]
        series = self._series_of(master)
        exception = series.exceptions.get(ev.id) or copy.deepcopy(ev)
        backup = copy.deepcopy(exception)
        try:
            self._apply_fields(exception, {k: v for k, v in fields.items() if k not in ("type", "recurrence")})
        except GraphError:
            if ev.id in series.exceptions:
                series.exceptions[ev.id] = backup
            raise
        exception.data["type"] = "exception"
        self._touch(exception)
        series.exceptions[ev.id] = exception
        self._touch(master)  # the master item changes when an exception is stored
        # keep exceptions' seq newer than the master's, so delta reports the exception as changed
        exception.seq = self._next_seq()
        self._changed(master.mailbox, master.id, "updated")

    def _cancel_instance(self, ev: _Event) -> None:
        master = self._events[ev.mailbox][str(ev.data["seriesMasterId"])]
        series = self._series_of(master)
        series.exceptions.pop(ev.id, None)
        series.cancelled.add(ev.id)
        self._touch(master)
        self._tombstones[ev.mailbox][ev.id] = self._next_seq()
        self._changed(master.mailbox, master.id, "updated")

    def _series_snapshot(self, ev: _Event) -> tuple[str, set[str]] | None:
        """A master's pattern and instance ids before an edit (None for other events)."""
        if ev.data.get("type") != "seriesMaster":
            return None
        return self._pattern_of(ev) or "", {i.id for i in self._instances_of(ev)}

    def _series_edited(self, master: _Event, before: tuple[str, set[str]] | None) -> None:
        """After an edit of the master: a new pattern discards exceptions and cancellations, and
        instances that no longer exist are tombstoned (delta reports them @removed)."""
        if before is None or before[0] == self._pattern_of(master):
            return
        series = self._series_of(master)
        series.exceptions.clear()
        series.cancelled.clear()
        current = {i.id for i in self._instances_of(master)}
        for occ_id in before[1] - current:
            self._tombstones[master.mailbox][occ_id] = self._next_seq()

    def _series_deleted(self, master: _Event) -> None:
        for instance in self._instances_of(master):
            self._tombstones[master.mailbox][instance.id] = self._next_seq()
        self._series.pop(master.id, None)

    # ---------------------------------------------------------------- REST
    def _list_instances(self, request: Request, user_ref: str, master_id: str) -> Response:
        start, end = self._window(request)
        tz = self._tz_pref(request)
        top, skip = self._paging(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            master = self._event_or_404(mailbox, master_id)
            if master.data.get("type") != "seriesMaster":
                raise GraphError(400, "ErrorInvalidRequest", "The specified event is not a recurring series master.")
            matching = [ev for ev in self._instances_of(master) if ev.overlaps(start, end)]
            value = [self._selected(request, self._render(ev, tz)) for ev in matching[skip : skip + top]]
        return self._page(request, value, len(matching), top, skip)
