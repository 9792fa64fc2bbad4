"""A Dime.Scheduler appointment as published (webhook, hook or `GET /appointment`), read tolerantly.

Dime.Scheduler documents a PascalCase schema (`appointment-incoming`: `AppointmentGuid`,
`StartDate`, `Task {TaskNo, Job {JobNo}}`, `Assignments [{Resource {ResourceNo, Email}}]`); a
Webhook connector really posts `Resources` instead of `Assignments`, `Category {Name, Color}`
instead of `{DisplayName, Color}`, local times without an offset and, as far as the evidence
shows, the internal `Id` without `AppointmentGuid` (the body shown in the
https://github.com/hbulens/dela README); other channels send flat camelCase
(`appointmentGuid`, `start`, `jobNo`, `resourceNo`). Keys are matched case-insensitively and every
shape is read into one `Publication`. What is missing stays missing (None): a delete needs only the
GUID (or the `Id` to look it up by), an upsert needs times, and nothing is guessed.

Resources: an item is `{ResourceNo, Email, DisplayName}`, `{Resource: {...}}` or a bare resource
number (text or a whole number). A list with an item none of these shapes can read is refused
whole (`PUBLICATION_UNREADABLE_RESOURCES`, naming the shape): applying the part we understood
would delete the events of the resources we did not. Only a list that is present and empty means
"unassigned"; an absent or null list means "not said" (nothing is deleted).

Times: a date-time without an offset is wall-clock time in Dime.Scheduler's zone (DIME_TIME_ZONE;
`shared/core/zones.py` says how a time in a change of offset is read). A LastModifiedDate more
than `FUTURE_TOLERANCE` after the time we received it is clamped to that time (`clamped`): a
forged or skewed future date would otherwise make every later, genuine publication "stale".
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from shared.core.transactions import ErrorCode
from shared.core.zones import localize, zone_named

__all__ = ["zone_named"]  # re-exported: the use cases read DIME_TIME_ZONE through it

CHANGES = ("created", "updated", "deleted")
MAX_TEXT = 10_000  # subject/body kept per appointment (Outlook's own limits are larger)
FUTURE_TOLERANCE = timedelta(minutes=5)  # a LastModifiedDate later than receipt + this is clamped
_FRACTION = re.compile(r"\.(\d+)")
_RESOURCE_LISTS = ("assignments", "resources")


class PublicationError(ValueError):
    """This item can never be applied (no GUID, unreadable times or resources): recorded once as a
    failed transaction with `code`; no retry of the same body can fix it."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.PUBLICATION_INVALID) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Assignment:
    resource_no: str | None
    email: str | None  # as the payload carries it; else looked up with GET /resource


@dataclass(frozen=True)
class Publication:
    guid: str  # AppointmentGuid, lowercase; "" until `appointment_id` is looked up (GET /appointment/{id})
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
    appointment_id: str | None = None  # Dime.Scheduler's internal Id, as the connector sends it
    # Free fields for the rules (`field:<name>`): the task's own scalar fields, then the
    # appointment's `AppointmentFieldValues` (which win), names lowercased. Shape unverified.
    fields: tuple[tuple[str, Any], ...] = ()

    def to_message(self) -> dict[str, Any]:
        data = asdict(self)
        data["assignments"] = [asdict(a) for a in self.assignments]
        return data

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Publication:
        fields = dict(data)
        fields["assignments"] = tuple(Assignment(**a) for a in data.get("assignments") or ())
        fields["fields"] = tuple((str(k), v) for k, v in data.get("fields") or ())
        return cls(**fields)

    @property
    def resolved(self) -> bool:
        """Whether the AppointmentGuid is known (else the worker looks it up by `appointment_id`)."""
        return bool(self.guid)

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
        moment = localize(moment, naive_zone)
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:
        raise PublicationError(f"date-time out of range {value[:40]!r}") from None


def _shape(item: Any) -> str:
    """How an item looks, for the administrator: its keys (an object) or its JSON type."""
    if isinstance(item, dict):
        keys = ", ".join(str(k)[:40] for k in list(item)[:8])
        return "{" + keys + (", …" if len(item) > 8 else "") + "}"
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "a boolean"
    if isinstance(item, list):
        return "an array"
    if isinstance(item, str):
        return "an empty text" if not item.strip() else "text"
    return "a number" if isinstance(item, int | float) else type(item).__name__


def _number(value: Any) -> str | None:
    """A resource number: non-empty text, or a whole number (never a boolean or a fraction)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:100]
    return None


def _assignment(item: Any) -> Assignment | None:
    """One resource item in any shape the evidence allows, or None when none reads it."""
    if not isinstance(item, dict):
        number = _number(item)
        return Assignment(number, None) if number else None
    doc = _lower_keys(item)
    nested = doc.get("resource")
    resource = nested if isinstance(nested, dict) else doc
    number = _number(_first(resource, "resourceno", "no", "resourcecode")) or _number(_first(doc, "resourceno"))
    email = _text(_first(resource, "email", "resourceemail") or _first(doc, "resourceemail"), 320)
    if not (number or email):
        return None
    return Assignment(number, email.strip().lower() if email else None)


def _resource_lists(item: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """The resource lists present (not null) under their own names; a lone object counts as one
    item. Anything else under those names is unreadable (not "unassigned")."""
    found = []
    for key, value in item.items():
        name = str(key)
        if name.lower() not in _RESOURCE_LISTS or value is None:
            continue
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise PublicationError(
                f"{name} must be a list of resources, got {_shape(value)}", ErrorCode.PUBLICATION_UNREADABLE_RESOURCES
            )
        found.append((name, value))
    return found


def _assignments(item: dict[str, Any], doc: dict[str, Any]) -> tuple[tuple[Assignment, ...], bool]:
    """The assigned resources, and whether the payload said who they are (an empty list: nobody)."""
    found: list[Assignment] = []
    lists = _resource_lists(item)
    for name, items in lists:
        unreadable = []
        for entry in items:
            read = _assignment(entry)
            if read is None:
                unreadable.append(entry)
            else:
                found.append(read)
        if unreadable:
            readable = len(items) - len(unreadable)
            raise PublicationError(
                f"{name}: {len(unreadable)} of {len(items)} item(s) unreadable ({readable} readable), item shape "
                f"{_shape(unreadable[0])}; expected {{ResourceNo, Email}}, {{Resource: {{ResourceNo, Email}}}} or a "
                "resource number. Nothing was applied, nothing deleted",
                ErrorCode.PUBLICATION_UNREADABLE_RESOURCES,
            )
    single = _number(_first(doc, "resourceno"))
    if single and not any(a.resource_no == single for a in found):
        email = _text(_first(doc, "resourceemail", "email"), 320)
        found.append(Assignment(single, email.strip().lower() if email else None))
    unique: dict[tuple[str | None, str | None], Assignment] = {}
    for a in found:
        unique.setdefault((a.resource_no, a.email), a)
    return tuple(unique.values()), bool(lists) or single is not None


def guid_of(item: Any) -> str | None:
    """The AppointmentGuid of an appointment object (either shape), lowercase, or None."""
    if not isinstance(item, dict):
        return None
    raw_guid = _first(_lower_keys(item), "appointmentguid", "guid")
    try:
        return str(uuid.UUID(str(raw_guid))) if raw_guid is not None else None
    except ValueError:
        return None


def appointment_id_of(item: Any) -> str | None:
    """Dime.Scheduler's internal appointment `Id` (a whole number), or None."""
    if not isinstance(item, dict):
        return None
    raw = _first({str(k).lower(): v for k, v in item.items()}, "id", "appointmentid")
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    return str(raw) if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 2**63 else None


def parse_publication(item: Any, naive_zone: tzinfo = UTC, *, by_id: bool = False) -> Publication:
    """One appointment object, any shape; PublicationError when it can never be applied.

    `by_id`: an item without AppointmentGuid but with the internal `Id` is accepted unresolved
    (guid "", `appointment_id` set): the publication worker looks the GUID up with
    GET /appointment/{id} (never the HTTP function: no outbound call in the request)."""
    if not isinstance(item, dict):
        raise PublicationError("an appointment must be a JSON object")
    doc = _lower_keys(item)
    guid = guid_of(item)
    appointment_id = appointment_id_of(item)
    if guid is None and (not by_id or appointment_id is None or _first(doc, "appointmentguid", "guid") is not None):
        raise PublicationError("AppointmentGuid is missing or not a GUID, and there is no Id to look it up by")
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
    assignments, assignments_known = _assignments(item, doc)
    return Publication(
        guid=guid or "",
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
        assignments=assignments,
        assignments_known=assignments_known,
        appointment_id=appointment_id,
        fields=free_fields(task, doc.get("appointmentfieldvalues")),
    )


MAX_FREE_FIELDS = 100
_NAME_KEYS = ("fieldname", "name", "code", "field", "key", "fieldcode")
_VALUE_KEYS = ("value", "fieldvalue", "val")


def free_fields(task: dict[str, Any], values: Any) -> tuple[tuple[str, Any], ...]:
    """The free fields a rule may read: the task's scalar fields (TaskNo, Description, FreeBit1, …),
    then `AppointmentFieldValues` (the API description says only "an array"): items
    `{FieldName|Name|Code|Key: …, Value: …}` or one object of name → value. An item of no such shape
    is left out (a rule on it sees a missing field, so only `isEmpty` holds)."""
    found: dict[str, Any] = {}
    for key, value in task.items():
        if _scalar(value):
            found[key] = value
    if isinstance(values, dict):
        values = [{"name": k, "value": v} for k, v in values.items()]
    for item in values if isinstance(values, list) else []:
        if not isinstance(item, dict):
            continue
        name = _first(item, *_NAME_KEYS)
        value = next((item[k] for k in _VALUE_KEYS if k in item), None)
        if isinstance(name, str) and name.strip() and _scalar(value):
            found[name.strip().lower()] = value
    return tuple(list(found.items())[:MAX_FREE_FIELDS])


def _scalar(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float | bool) and len(str(value)) <= MAX_TEXT)


def clamped(pub: Publication, received_at: datetime) -> Publication:
    """A LastModifiedDate more than FUTURE_TOLERANCE after receipt becomes the time of receipt."""
    if pub.last_modified is None or datetime.fromisoformat(pub.last_modified) <= received_at + FUTURE_TOLERANCE:
        return pub
    return replace(pub, last_modified=received_at.astimezone(UTC).isoformat())


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


# Nesting: real payloads are a handful of levels deep (array → appointment → Task → Job → Category).
MAX_NESTING = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)  # an unterminated one runs to the end
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_AS_PARENTHESES = bytes.maketrans(b"[{]}", b"(())")
_STEP = [0] * 256
_STEP[ord("(")] = 1
_STEP[ord(")")] = -1


def _max_depth(brackets: bytes) -> int:
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets), initial=0))


def nested_deeper_than(body: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether a JSON text nests arrays/objects deeper than `limit`, before it is parsed.

    json.loads recurses per level, so `[` × 50,000 raises RecursionError (a 500); this answers
    first, in linear time and without recursion (a body with fewer opening brackets than `limit`
    costs two counts):

    1. Strings are cut out by one regular expression whose quantifiers never backtrack (an
       unterminated string runs to the end, so no position is scanned twice), and the rest is
       reduced to its brackets, all as ( and ).
    2. Every adjacent "()" (an innermost pair) is removed in one pass. That leaves the depth
       before every other bracket as it was, and a removed pair peaked at most one above the
       bracket before it: the body's depth is the rest's, or one more. A well-formed body loses
       exactly one level, so the answer is exact for it; a malformed one (unbalanced brackets)
       exactly `limit` deep may be called deeper, which no real payload comes near.
    3. The rest's depth: from its counts when no pair is left (it is then ")…)(…("), else summed
       bracket by bracket (the one step at Python speed, over what the pass left)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(_AS_PARENTHESES, _NOT_BRACKETS)
    rest = brackets.replace(b"()", b"")
    depth = _max_depth(rest) if b"()" in rest else max(0, 2 * rest.count(b"(") - len(rest))
    return depth + (len(rest) < len(brackets)) > limit


def is_newer_or_same(candidate: str | None, applied: str | None) -> bool:
    """Whether a publication may be applied over one applied earlier (None = not comparable: yes)."""
    if candidate is None or applied is None:
        return True
    return datetime.fromisoformat(candidate) >= datetime.fromisoformat(applied)
