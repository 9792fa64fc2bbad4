"""What the console shows of an appointment or event, decided when it is written (issue 19).

A page of the console must cost no Graph or Dime.Scheduler call per row, so every transaction and
link keeps the subject and start it was written with, and the person's name. The subject is the one
the other side shows: for Outlook → Dime.Scheduler the board's (`appointment_for` has already masked
a private event's, e.g. "Private appointment", unless private details are allowed), for Dime.Scheduler
→ Outlook the event's as placed (after the rules' look). So a masked subject is the only one stored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shared.core.api_format import iso_utc
from shared.core.outlook_to_dime.appointments import Appointment
from shared.core.resources import Resource
from shared.core.transactions import Transaction


@dataclass(frozen=True)
class Shown:
    subject: str | None = None
    start: str | None = None  # ISO 8601 UTC


def on_board(appointment: Appointment | None) -> Shown:
    """The appointment as Dime.Scheduler shows it: its (already masked) subject and start."""
    if appointment is None:
        return Shown()
    return Shown(appointment.subject, iso_utc(appointment.start))


def in_calendar(body: dict[str, Any] | None, start: str | None) -> Shown:
    """The event as we placed it in Outlook: the body's subject (after rules) and the planner's start."""
    subject = body.get("subject") if body else None
    return Shown(subject if isinstance(subject, str) else None, iso_utc(start))


def shown_of(link: Any) -> Shown:
    """What a stored link (`Link` or `EventLink`) recorded; empty for a row written before."""
    return Shown(getattr(link, "subject", None), getattr(link, "start", None)) if link is not None else Shown()


def described(transaction: Transaction, shown: Shown, resource: Resource | None = None) -> Transaction:
    """The transaction with what the console shows of it; the person's only when known here."""
    person = (resource.display_name or None) if resource else transaction.person
    upn = (resource.upn or None) if resource else transaction.upn
    return replace(transaction, subject=shown.subject, start=shown.start, person=person, upn=upn)
