"""Events and series of ``FakeGraph``: create/update/delete helpers and the ``/events`` REST routes."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .._http import Request, Response
from .base import GraphBase
from .common import (
    EVENT_TYPES,
    IMPORTANCE,
    SENSITIVITY,
    SHOW_AS,
    GraphError,
    _Event,
    format_utc,
    parse_datetime,
    zone,
)


class EventsMixin(GraphBase):
    """Events (and their series): mutation shared by helpers and REST, public helpers, REST routes."""

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

    def _create(
        self, mailbox: str, fields: dict[str, Any], event_id: str | None = None, calendar: str = "primary"
    ) -> _Event:
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
        ev = _Event(mailbox, data, now, now + timedelta(minutes=30), "UTC", "UTC", calendar=calendar)
        if fields.get("recurrence") and "type" not in fields:
            fields = {**fields, "type": "seriesMaster"}  # Graph makes an event with a pattern a master
        self._apply_fields(ev, fields)
        self._touch(ev)
        self._events[mailbox][eid] = ev
        self._tombstones[mailbox].pop(eid, None)
        self._changed(ev.mailbox, eid, "created")
        return ev

    def _update(self, ev: _Event, fields: dict[str, Any]) -> None:
        if self._is_instance(ev):
            self._update_instance(ev, fields)  # becomes (or stays) an exception; the master is notified
            return
        before = self._series_snapshot(ev)
        backup = (copy.deepcopy(ev.data), ev.start_utc, ev.end_utc, ev.start_zone, ev.end_zone, dict(ev.ext_props))
        try:
            self._apply_fields(ev, fields)
        except GraphError:
            ev.data, ev.start_utc, ev.end_utc, ev.start_zone, ev.end_zone, ev.ext_props = backup
            raise
        self._touch(ev)
        if ev.data.get("type") == "seriesMaster":
            self._series_edited(ev, before)
        self._changed(ev.mailbox, ev.id, "updated")

    def _delete(self, ev: _Event) -> None:
        """Delete (a series master: the whole series; an instance: cancel that occurrence).

        The item moves to Deleted Items with its immutable id (what a later GET answers is the
        ``deleted_get_status`` option)."""
        if self._is_instance(ev):
            self._cancel_instance(ev)
            return
        del self._events[ev.mailbox][ev.id]
        self._deleted[ev.mailbox][ev.id] = ev
        self._tombstones[ev.mailbox][ev.id] = self._next_seq()
        if ev.data.get("type") == "seriesMaster":
            self._series_deleted(ev)
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
        it contains '@', else as object id). ``calendar``: a name other than "primary" puts the
        event into a second calendar of the mailbox: notified (the subscription covers every
        calendar) but not in calendarView or delta (primary calendar only, https://learn.microsoft.com/graph/delta-query-events).
        """
        event_id = extra.pop("id", None)
        calendar = str(extra.pop("calendar", "primary"))
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
            ev = self._create(mailbox, fields, event_id, calendar)
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
            self._update(self._require(mailbox_id, event_id), fields)
            ev = self._require(mailbox_id, event_id)  # an edited occurrence is now a stored exception
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

    def _send_mail(self, request: Request, user_ref: str) -> Response:
        """`POST /users/{id}/sendMail`: 202 Accepted with no body ("user: sendMail", Microsoft Graph
        v1.0 reference); 404 for an unknown sender, 400 without a message or a recipient."""
        body = request.json
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or not message.get("toRecipients"):
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        with self._lock:
            user = self._find_user(user_ref)
            if user is None:
                raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user_ref}' is invalid.")
            self.sent_mail.append((user["id"], body))
        return Response(202, None)

    def _get_event(self, request: Request, user_ref: str, event_id: str) -> Response:
        tz, expand = self._tz_pref(request), self._expand(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            ev = self._lookup(mailbox, event_id)
            if ev is None and self.deleted_get_status == 200:
                ev = self._deleted[mailbox].get(event_id)  # still readable in Deleted Items
            if ev is None:
                ev = self._event_or_404(mailbox, event_id)
            body = {"@odata.context": f"{self.base_url}/$metadata#users('{user_ref}')/events/$entity"}
            body.update(self._selected(request, self._render(ev, tz, expand)))
            return Response(200, body, self._etag_header(ev))

    def _list_events(self, request: Request, user_ref: str) -> Response:
        tz, expand = self._tz_pref(request), self._expand(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            value = [self._selected(request, self._render(ev, tz, expand)) for ev in self._events[mailbox].values()]
        return Response(
            200, {"@odata.context": f"{self.base_url}/$metadata#users('{user_ref}')/events", "value": value}
        )

    def _calendar_view(self, request: Request, user_ref: str) -> Response:
        """Paged like every Graph collection ("List calendarView": 10 per page unless ``$top``
        says otherwise, then ``@odata.nextLink``), as ``/instances`` is here; also as a ``$batch``
        member, whose nextLink the client follows on its own (JSON batching answers each member
        as its own request). ``$expand=singleValueExtendedProperties($filter=id eq '…')`` renders
        the property on the events that carry it, as on ``/events`` ("Get
        singleValueLegacyExtendedProperty", Microsoft Learn)."""
        start, end = self._window(request)
        tz, expand = self._tz_pref(request), self._expand(request)
        top, skip = self._paging(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            matching = [ev for ev in self._view_events(mailbox) if ev.overlaps(start, end)]
            page = matching[skip : skip + top]
            value = [self._selected(request, self._render(ev, tz, expand)) for ev in page]
        return self._page(request, value, len(matching), top, skip)

    def _calendars(self, request: Request, user_ref: str, rest: list[str]) -> Response:
        """``POST /calendars`` (a second calendar), ``DELETE /calendars/{id}`` (with its events),
        ``POST /calendars/{id}/events``: enough to model a mailbox with more than one calendar."""
        with self._lock:
            mailbox = self._mailbox(user_ref)
            names = self.__dict__.setdefault("_calendar_names", {})
            if len(rest) == 1 and request.method == "POST":
                body = request.json if isinstance(request.json, dict) else {}
                calendar_id = "AAkALgCal" + self._b64(24, urlsafe=True)
                names[calendar_id] = str(body.get("name") or "Calendar")
                return Response(201, {"id": calendar_id, "name": names[calendar_id]})
            if len(rest) >= 2 and rest[1] not in names:
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            if len(rest) == 2 and request.method == "DELETE":
                for ev in [e for e in self._events[mailbox].values() if e.calendar == rest[1]]:
                    self._delete(ev)
                del names[rest[1]]
                return Response(204)
        if len(rest) == 3 and rest[2].lower() == "events" and request.method == "POST":
            return self._post_event(request, user_ref, calendar=rest[1])
        raise GraphError(405, "MethodNotAllowed", "Method not allowed.")

    def _post_event(self, request: Request, user_ref: str, calendar: str = "primary") -> Response:
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
            ev = self._create(mailbox, fields, calendar=calendar)
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
        fields = {k: v for k, v in body.items() if not k.startswith("@odata")}
        with self._lock:
            mailbox = self._mailbox(user_ref)
            gone = self._deleted[mailbox].get(event_id) if self._lookup(mailbox, event_id) is None else None
            if gone is not None and self.deleted_patch_status == 200:
                self._apply_fields(gone, fields)  # edited where it is: in Deleted Items, no notification
                self._touch(gone)
                return Response(200, self._render(gone, tz), self._etag_header(gone))
            self._update(self._event_or_404(mailbox, event_id), fields)
            ev = self._event_or_404(mailbox, event_id)  # an edited occurrence is now a stored exception
            result = self._render(ev, tz)
        self._wake.set()
        return Response(200, result, self._etag_header(ev))

    def _delete_event(self, request: Request, user_ref: str, event_id: str) -> Response:
        with self._lock:
            mailbox = self._mailbox(user_ref)
            in_deleted_items = self._lookup(mailbox, event_id) is None and event_id in self._deleted[mailbox]
            if in_deleted_items and self.deleted_delete_status == 403:
                raise GraphError(403, "ErrorCannotDeleteObject", "The specified object cannot be deleted.")
            self._delete(self._event_or_404(mailbox, event_id))
        self._wake.set()
        return Response(204)
