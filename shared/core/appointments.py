"""Outlook event -> Dime.Scheduler appointment, as the Exchange import procedures expect it.

The content hash covers exactly what we send, so "nothing we send would change" is one string
comparison: that is how echoes, duplicate notifications and no-op edits cost no write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from shared.core.events import Event

UPSERT_PROCEDURE = "mboc_upsertExchangeAppointment"
DELETE_PROCEDURE = "mboc_deleteExchangeAppointment"

# Dime.Scheduler's enumerations (not in Outlook's order).
SHOW_AS_CODES = {"free": 1, "tentative": 2, "busy": 3, "oof": 4, "workingElsewhere": 5, "unknown": 6}
SENSITIVITY_CODES = {"normal": 1, "personal": 2, "private": 3, "confidential": 4}
IMPORTANCE_CODES = {"normal": 0, "high": 1, "low": 2}

PARAMETER_NAMES = (
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

    def parameters(self) -> list[str]:
        return [
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

    def content_hash(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def appointment_for(event: Event, guid: str, resource_email: str, *, private_details: bool) -> Appointment:
    """Map an event; private/confidential ones lose subject and body unless allowed."""
    hide = event.is_private and not private_details
    return Appointment(
        guid=guid,
        exchange_id=event.id,
        ical_uid=event.ical_uid or "",
        start=format_time(event.start),
        end=format_time(event.end),
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


def upsert_call(appointment: Appointment) -> dict[str, object]:
    return import_call(UPSERT_PROCEDURE, appointment.parameters())


def delete_call(guid: str, exchange_id: str, resource_email: str) -> dict[str, object]:
    """The .NET SDK sends the upsert's parameter set to the delete procedure too."""
    values = dict.fromkeys(PARAMETER_NAMES, "")
    values.update(AppointmentGuid=guid, ExchangeId=exchange_id, ResourceEmail=resource_email, CreatedByExchange="True")
    return import_call(DELETE_PROCEDURE, [values[name] for name in PARAMETER_NAMES])
