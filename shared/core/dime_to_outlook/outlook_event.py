"""Dime.Scheduler appointment → the Outlook event we write into an assigned person's calendar.

No attendees (so Outlook sends no invitation e-mails), UTC times, show-as from DIME_EVENT_SHOW_AS,
importance mapped, categories from the category (and optionally time marker) name, reminders as
the mailbox defaults, and a single-value extended property naming appointment and resource: the
tag that tells the Outlook → Dime.Scheduler path "ours", even before our link is saved.

Two comparisons keep writes and echoes cheap: `desired_hash` (what we would send; PATCH only when
it changed) and `same_content` (an event read back from Graph against what we want: equal means
an echo of our own write, different means a person edited a planner-owned event).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from typing import Any

from shared.core.dime_to_outlook.publication import Publication
from shared.core.dime_to_outlook.rule_facts import facts_of
from shared.core.dime_to_outlook.rules import Outcome, render
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID, tag_value
from shared.core.events import Event

TRANSACTION_NAMESPACE = uuid.UUID("0b3e9a4c-1f6d-4e55-8a27-91c2d4f0e6b3")
IMPORTANCE_NAMES = {0: "normal", 1: "high", 2: "low"}
SHOW_AS_VALUES = ("free", "tentative", "busy", "oof", "workingElsewhere")


def transaction_id(guid: str, mailbox_id: str, generation: int) -> str:
    """Deterministic, so a retried create is dropped by Graph; a delete bumps the generation so a
    later re-create is a new transaction and is not swallowed as a duplicate."""
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{guid}/{mailbox_id.lower()}/{generation}"))


def subject_of(pub: Publication) -> str:
    if pub.subject and pub.subject.strip():
        return pub.subject.strip()
    numbers = [n for n in (pub.job_no, pub.task_no) if n]
    if numbers:
        return " / ".join(numbers)
    return f"Appointment {pub.appointment_no}" if pub.appointment_no else "Dime.Scheduler appointment"


def footer_of(pub: Publication) -> str:
    parts = [
        f"{label} {value}"
        for label, value in (("job", pub.job_no), ("task", pub.task_no), ("appointment", pub.appointment_no))
        if value
    ]
    return "Planned in Dime.Scheduler" + (": " + ", ".join(parts) if parts else "")


def body_of(pub: Publication) -> str:
    text = (pub.body or "").strip()
    return f"{text}\n\n-- \n{footer_of(pub)}" if text else footer_of(pub)


def categories_of(pub: Publication, with_time_marker: bool) -> list[str]:
    names = [pub.category] if pub.category else []
    if with_time_marker and pub.time_marker and pub.time_marker not in names:
        names.append(pub.time_marker)
    return names


def _graph_time(iso_utc: str) -> dict[str, str]:
    moment = datetime.fromisoformat(iso_utc)
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def event_body(pub: Publication, resource: str, show_as: str, with_time_marker: bool) -> dict[str, Any]:
    """The Graph JSON of the event (PATCH body; the create adds transactionId). Needs times."""
    assert pub.start is not None and pub.end is not None
    body: dict[str, Any] = {
        "subject": subject_of(pub),
        "body": {"contentType": "text", "content": body_of(pub)},
        "start": _graph_time(pub.start),
        "end": _graph_time(pub.end),
        "isAllDay": False,
        "showAs": show_as,
        "categories": categories_of(pub, with_time_marker),
        "singleValueExtendedProperties": [{"id": TAG_PROPERTY_ID, "value": tag_value(pub.guid, resource)}],
    }
    if pub.importance is not None:
        body["importance"] = IMPORTANCE_NAMES[pub.importance]
    return body


def with_look(body: dict[str, Any], pub: Publication, resource: str, look: Outcome) -> dict[str, Any]:
    """The event as a rule wants it to look (`rules.py`): show-as, sensitivity, categories, subject
    and body templates, reminder. What the rule leaves unsaid stays as `event_body` made it; the
    footer naming job, task and appointment stays under a templated body."""
    out = dict(body)
    facts = facts_of(pub, resource)
    if look.show_as is not None:
        out["showAs"] = look.show_as
    if look.sensitivity is not None:
        out["sensitivity"] = look.sensitivity
    if look.categories is not None:
        out["categories"] = list(look.categories)
    if look.subject is not None:
        out["subject"] = render(look.subject, facts)[:255] or body["subject"]
    if look.body is not None:
        text = render(look.body, facts)
        out["body"] = {"contentType": "text", "content": f"{text}\n\n-- \n{footer_of(pub)}" if text else footer_of(pub)}
    if look.reminder is not None:
        out["isReminderOn"] = look.reminder
    return out


def desired_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _words(text: str) -> str:
    return " ".join(re.sub(r"<[^>]*>", " ", text).split())


def _fingerprint(subject: str, body: str, start: datetime, end: datetime, show_as: str, importance: str, cats: Any):
    return (subject.strip(), _words(body), start, end, show_as, importance, tuple(sorted(cats)))


def same_content(event: Event, body: dict[str, Any]) -> bool:
    """Whether the event as Outlook holds it shows what we want (whitespace and markup aside)."""
    want = _fingerprint(
        body["subject"],
        body["body"]["content"],
        datetime.fromisoformat(body["start"]["dateTime"] + "+00:00"),
        datetime.fromisoformat(body["end"]["dateTime"] + "+00:00"),
        body["showAs"],
        body.get("importance", event.importance),
        body["categories"],
    )
    have = _fingerprint(
        event.subject, event.body, event.start, event.end, event.show_as, event.importance, event.categories
    )
    return want == have


def stored_hash(event: Event) -> str:
    """Hash of an event as Graph returned it: equal on a later read = nobody touched it."""
    parts = _fingerprint(
        event.subject, event.body, event.start, event.end, event.show_as, event.importance, event.categories
    )
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()
