"""The sync decision for one Outlook event: a pure function returning what to do and why.

Computed first, executed separately (like vdirsyncer's sync module): the decision can be tested
exhaustively as a table, and every path (webhook worker, delta, reconcile, retry) shares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.core.consent import Consent
from shared.core.events import Event
from shared.core.links import Link


class Action(StrEnum):
    UPSERT = "upsert"  # write the appointment to Dime.Scheduler, then the link
    DELETE = "delete"  # remove the appointment from Dime.Scheduler, then the link
    RELINK = "relink"  # nothing to write; remember the new changeKey (content is identical)
    SKIP = "skip"  # nothing to do


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def refusal(event: Event, consent: Consent, window: tuple[datetime, datetime]) -> str | None:
    """Why this event may not be on the planning board, or None when it may."""
    if event.is_cancelled:
        return "cancelled"
    if event.type == "seriesMaster":
        return "series-master"  # occurrences are synchronised one by one (calendarView)
    denied = consent.refusal(event.show_as, event.sensitivity)
    if denied:
        return denied
    window_start, window_end = window
    if event.end <= window_start or event.start >= window_end:
        return "outside-window"
    return None


def decide(
    event: Event | None,
    link: Link | None,
    consent: Consent,
    window: tuple[datetime, datetime],
    content_hash: str | None,
) -> Decision:
    """event None = gone from Outlook; content_hash = hash of what we would send now."""
    if event is None:
        return Decision(Action.DELETE, "event-deleted") if link else Decision(Action.SKIP, "deleted-never-synced")
    why_not = refusal(event, consent, window)
    if why_not:
        return Decision(Action.DELETE, why_not) if link else Decision(Action.SKIP, why_not)
    if link is None:
        return Decision(Action.UPSERT, "new")
    if event.change_key is not None and event.change_key == link.change_key:
        return Decision(Action.SKIP, "unchanged")
    if content_hash is not None and content_hash == link.content_hash:
        return Decision(Action.RELINK, "content-unchanged")
    return Decision(Action.UPSERT, "changed")
