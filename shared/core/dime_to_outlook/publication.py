"""A Dime.Scheduler appointment as published (webhook, hook or `GET /appointment`), read tolerantly.

Dime.Scheduler documents a PascalCase schema (`appointment-incoming`: `AppointmentGuid`,
`StartDate`, `Task {TaskNo, Job {JobNo}}`, `Assignments [{Resource {ResourceNo, Email}}]`); other
channels send flat camelCase (`appointmentGuid`, `start`, `jobNo`, `resourceNo`). Keys are matched
case-insensitively and both shapes are read into one `Publication`. What is missing stays missing
(None): a delete needs only the GUID, an upsert needs times, and nothing is guessed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

CHANGES = ("created", "updated", "deleted")
MAX_TEXT = 10_000  # subject/body kept per appointment (Outlook's own limits are larger)
_FRACTION = re.compile(r"\.(\d+)")


class PublicationError(ValueError):
    """This item can never be applied (no GUID, unreadable times): a 4xx and a failed transaction."""


@dataclass(frozen=True)
class Assignment:
    resource_no: str | None
    email: str | None  # as the payload carries it; else looked up with GET /resource


@dataclass(frozen=True)
class Publication:
    guid: str  # AppointmentGuid, lowercase
    appointment_no: str | None
    subject: str | None
    body: str | None
    start: str | None  # ISO 8601 UTC
    end: str | None
    importance: int | None  # Dime.Scheduler: 0 normal, 1 high, 2 low
    last_modified: str | None  # ISO 8601 UTC: orders publications of one appointment
    job_no: str | None
    task_no: str | None
    source_app: str | None
    category: str | None
    time_marker: str | None
    assignments: tuple[Assignment, ...] = field(default_factory=tuple)
    assignments_known: bool = True  # False: the payload said nothing about resources (not "none")

    def to_message(self) -> dict[str, Any]:
        data = asdict(self)
        data["assignments"] = [asdict(a) for a in self.assignments]
        return data

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Publication:
        fields = dict(data)
        fields["assignments"] = tuple(Assignment(**a) for a in data.get("assignments") or ())
        return cls(**fields)

    @property
    def has_times(self) -> bool:
        return self.start is not None and self.end is not None

    def names_resource(self, resource: str) -> bool:
        """Whether a resource (number or e-mail, as a link's tag names it) is assigned."""
        return any(resource in (a.resource_no, a.email) for a in self.assignments)


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _first(doc: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = doc.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):  # {"DisplayName": ...} / {"Name": ...}
        value = _first(value, "displayname", "name")
        if value is None:
            return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)[:limit]


def parse_time(value: Any, naive_zone: tzinfo = UTC) -> str | None:
    """ISO 8601 → ISO UTC. A value without offset is read in `naive_zone` (DIME_TIME_ZONE)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PublicationError(f"unreadable date-time {str(value)[:40]!r}")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6], value.strip())
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PublicationError(f"unreadable date-time {value[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_zone)
    return moment.astimezone(UTC).isoformat()


def _assignments(doc: dict[str, Any]) -> tuple[Assignment, ...]:
    found: list[Assignment] = []
    items = _first(doc, "assignments", "resources")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, str):
                found.append(Assignment(item, None))
                continue
            if not isinstance(item, dict):
                continue
            resource = item.get("resource") if isinstance(item.get("resource"), dict) else item
            number = _text(_first(resource, "resourceno", "no", "resourcecode"))
            email = _text(_first(resource, "email", "resourceemail"))
            if number or email:
                found.append(Assignment(number, email.lower() if email else None))
    single = _text(_first(doc, "resourceno"))
    if single and not any(a.resource_no == single for a in found):
        email = _text(_first(doc, "resourceemail", "email"))
        found.append(Assignment(single, email.lower() if email else None))
    unique: dict[tuple[str | None, str | None], Assignment] = {}
    for a in found:
        unique.setdefault((a.resource_no, a.email), a)
    return tuple(unique.values())


def guid_of(item: Any) -> str | None:
    """The AppointmentGuid of an appointment object (either shape), lowercase, or None."""
    if not isinstance(item, dict):
        return None
    raw_guid = _first(_lower_keys(item), "appointmentguid", "guid")
    try:
        return str(uuid.UUID(str(raw_guid))) if raw_guid is not None else None
    except ValueError:
        return None


def parse_publication(item: Any, naive_zone: tzinfo = UTC) -> Publication:
    """One appointment object, either shape; PublicationError when it can never be applied."""
    if not isinstance(item, dict):
        raise PublicationError("an appointment must be a JSON object")
    doc = _lower_keys(item)
    guid = guid_of(item)
    if guid is None:
        raise PublicationError("AppointmentGuid is missing or not a GUID")
    task = doc.get("task") if isinstance(doc.get("task"), dict) else {}
    job = task.get("job") if isinstance(task.get("job"), dict) else {}
    importance = _first(doc, "importance")
    if isinstance(importance, str) and importance.strip().isdigit():
        importance = int(importance)
    if importance is not None and (isinstance(importance, bool) or importance not in (0, 1, 2)):
        raise PublicationError(f"Importance must be 0, 1 or 2, not {str(importance)[:20]!r}")
    start = parse_time(_first(doc, "startdate", "start", "startdatetime"), naive_zone)
    end = parse_time(_first(doc, "enddate", "end", "enddatetime"), naive_zone)
    if (start is None) != (end is None):
        raise PublicationError("an appointment needs both a start and an end")
    if start is not None and end is not None and end < start:
        raise PublicationError("the appointment ends before it starts")
    return Publication(
        guid=guid,
        appointment_no=_text(_first(doc, "appointmentno", "appointmentnumber"), 100),
        subject=_text(_first(doc, "subject"), 255),
        body=_text(_first(doc, "body")),
        start=start,
        end=end,
        importance=importance,
        last_modified=parse_time(_first(doc, "lastmodifieddate", "lastmodified", "modifiedon"), naive_zone),
        job_no=_text(_first(job, "jobno") or _first(doc, "jobno"), 100),
        task_no=_text(_first(task, "taskno") or _first(doc, "taskno"), 100),
        source_app=_text(_first(job, "sourceapp") or _first(doc, "sourceapp"), 100),
        category=_text(_first(doc, "category", "categoryname"), 255),
        time_marker=_text(_first(doc, "timemarker", "timemarkername"), 255),
        assignments=_assignments(doc),
        assignments_known=any(k in doc for k in ("assignments", "resources", "resourceno")),
    )


def items_of(document: Any) -> list[Any]:
    """One object, an array, or an envelope ({"value": [...]}, {"appointments": [...]})."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lowered = {str(k).lower(): v for k, v in document.items()}
        for key in ("value", "appointments", "items", "data"):
            if isinstance(lowered.get(key), list):
                return lowered[key]
        return [document]
    raise PublicationError("the body must be an appointment object or an array of them")


def zone_named(name: str) -> tzinfo:
    return UTC if name.upper() in ("UTC", "Z", "ETC/UTC") else ZoneInfo(name)


def is_newer_or_same(candidate: str | None, applied: str | None) -> bool:
    """Whether a publication may be applied over one applied earlier (None = not comparable: yes)."""
    if candidate is None or applied is None:
        return True
    return datetime.fromisoformat(candidate) >= datetime.fromisoformat(applied)
