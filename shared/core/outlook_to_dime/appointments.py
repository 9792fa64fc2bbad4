"""Outlook event -> Dime.Scheduler appointment, as the Exchange import procedures expect it.

The content hash covers exactly what we send, so "nothing we send would change" is one string
comparison: that is how echoes, duplicate notifications and no-op edits cost no write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from shared.core.events import Event
from shared.core.zones import local_midnight_utc

UPSERT_PROCEDURE = "mboc_upsertExchangeAppointment"
DELETE_PROCEDURE = "mboc_deleteExchangeAppointment"

# Dime.Scheduler's enumerations (not in Outlook's order).
SHOW_AS_CODES = {"free": 1, "tentative": 2, "busy": 3, "oof": 4, "workingElsewhere": 5, "unknown": 6}
SENSITIVITY_CODES = {"normal": 1, "personal": 2, "private": 3, "confidential": 4}
IMPORTANCE_CODES = {"normal": 0, "high": 1, "low": 2}

PARAMETER_NAMES = (
    "AppointmentId",
    "AppointmentGuid",
    "ExchangeId",
    "ICalUId",
    "Start",
    "End",
    "Subject",
    "Body",
    "Importance",
    "ResourceEmail",
    "ShowAs",
    "Sensitivity",
    "Categories",
    "CreatedByExchange",
)

PRIVATE_SUBJECT = "Private appointment"
UNKNOWN_APPOINTMENT_ID = "0"  # what the vendor's SDK sends while Dime.Scheduler's id is unknown
# The typed values a delete must repeat
# (https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Models/Exchange/ExchangeAppointment.cs: never "" for a
# date, an enumeration or a
# boolean); the link keeps them. Body is left out (it can be large, and a delete needs no text).
KEPT_FOR_DELETE = (
    "ExchangeId",
    "ICalUId",
    "Start",
    "End",
    "Subject",
    "Importance",
    "ShowAs",
    "Sensitivity",
    "Categories",
)


class MissingDeleteValues(ValueError):
    """A link without the values its last upsert sent: a delete cannot be built faithfully."""


def format_time(value: datetime) -> str:
    """yyyy-MM-dd HH:mm:ssZ in UTC, as the vendor's SDK formats dates."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class Appointment:
    """Every value as a string, exactly as it goes on the wire."""

    guid: str
    exchange_id: str
    ical_uid: str
    start: str
    end: str
    subject: str
    body: str
    importance: str
    resource_email: str
    show_as: str
    sensitivity: str
    categories: str

    def parameters(self, appointment_id: str | None = None) -> list[str]:
        """Values in PARAMETER_NAMES order; AppointmentId "0" until Dime.Scheduler named one."""
        return [
            appointment_id or UNKNOWN_APPOINTMENT_ID,
            self.guid,
            self.exchange_id,
            self.ical_uid,
            self.start,
            self.end,
            self.subject,
            self.body,
            self.importance,
            self.resource_email,
            self.show_as,
            self.sensitivity,
            self.categories,
            "True",
        ]

    def kept_values(self) -> dict[str, str]:
        """What the link remembers for a later delete (see KEPT_FOR_DELETE)."""
        named = dict(zip(PARAMETER_NAMES, self.parameters(), strict=True))
        return {name: named[name] for name in KEPT_FOR_DELETE}

    def content_hash(self) -> str:
        """Over the content only: Dime.Scheduler's AppointmentId is identity, not content."""
        # vars(): the fields, as asdict() gives them for plain strings at a third of its cost (a
        # backfill hashes every event); the text, and so every stored hash, is unchanged.
        canonical = json.dumps(vars(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def board_times(event: Event, zone: tzinfo) -> tuple[str, str]:
    """Start and end as the board needs them. An all-day event (Graph: midnight to midnight of its
    dates, microsoft-graph-docs #1802) becomes midnight to midnight in Dime.Scheduler's zone
    (DIME_TIME_ZONE), converted to UTC: the board shows times in its own zone, so UTC midnight
    would show the day shifted by the zone's offset (all-day events are midnight to midnight,
    https://learn.microsoft.com/graph/api/resources/event `isAllDay`; docs/verification.md)."""
    if not event.is_all_day:
        return format_time(event.start), format_time(event.end)
    return format_time(local_midnight_utc(event.start, zone)), format_time(local_midnight_utc(event.end, zone))


def appointment_for(
    event: Event, guid: str, resource_email: str, *, private_details: bool, zone: tzinfo
) -> Appointment:
    """Map an event; private/confidential ones lose subject and body unless allowed; `zone` is
    Dime.Scheduler's (all-day events, see `board_times`)."""
    hide = event.is_private and not private_details
    start, end = board_times(event, zone)
    return Appointment(
        guid=guid,
        exchange_id=event.id,
        ical_uid=event.ical_uid or "",
        start=start,
        end=end,
        subject=PRIVATE_SUBJECT if hide else event.subject,
        body="" if hide else event.body,
        importance=str(IMPORTANCE_CODES.get(event.importance, 0)),
        resource_email=resource_email,
        show_as=str(SHOW_AS_CODES.get(event.show_as, SHOW_AS_CODES["unknown"])),
        sensitivity=str(SENSITIVITY_CODES.get(event.sensitivity, SENSITIVITY_CODES["normal"])),
        categories=";".join(event.categories),
    )


def import_call(procedure: str, parameters: list[str]) -> dict[str, object]:
    return {
        "StoredProcedureName": procedure,
        "ParameterNames": list(PARAMETER_NAMES),
        "ParameterValues": parameters,
    }


def upsert_call(appointment: Appointment, appointment_id: str | None = None) -> dict[str, object]:
    return import_call(UPSERT_PROCEDURE, appointment.parameters(appointment_id))


def delete_call(
    guid: str,
    resource_email: str,
    kept: dict[str, str] | None,
    appointment_id: str | None = None,
) -> dict[str, object]:
    """The .NET SDK sends the upsert's parameter set to the delete procedure too, typed values
    included: the last values sent (kept with the link), never "" for a date, enum or boolean."""
    missing = [name for name in KEPT_FOR_DELETE if name not in (kept or {})]
    if missing:
        raise MissingDeleteValues(f"the link does not hold the last values sent ({', '.join(missing)})")
    assert kept is not None
    values = {name: kept[name] for name in KEPT_FOR_DELETE}
    values.update(
        AppointmentId=appointment_id or UNKNOWN_APPOINTMENT_ID,
        AppointmentGuid=guid,
        Body="",
        ResourceEmail=resource_email,
        CreatedByExchange="True",
    )
    return import_call(DELETE_PROCEDURE, [values[name] for name in PARAMETER_NAMES])


def appointment_ids(content: dict[str, object]) -> dict[str, str]:
    """Dime.Scheduler's internal ids in an import answer (``Appointments[].Id``), by lower-cased
    GUID: read once per answer (an import of 100 calls answers 100 appointments)."""
    from shared.core.envelope import get_ci

    ids: dict[str, str] = {}
    for item in get_ci(content, "Appointments") or []:
        if not isinstance(item, dict):
            continue
        guid, value = str(get_ci(item, "Guid") or "").lower(), get_ci(item, "Id")
        if guid and guid not in ids and isinstance(value, int | str) and str(value).strip() not in ("", "0"):
            ids[guid] = str(value).strip()
    return ids


def appointment_id_of(content: dict[str, object], guid: str) -> str | None:
    """Dime.Scheduler's internal id for `guid` in an import answer (``Appointments[].Id``)."""
    return appointment_ids(content).get(guid.lower())
