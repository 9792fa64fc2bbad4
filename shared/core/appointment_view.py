"""One appointment's page (issue 19), without I/O: its board side, its timeline.

The management route reads the rows (`usecases/admin/appointments.py`); what it shows of them is
decided here, so it can be tested without storage.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.core.api_format import iso_utc
from shared.core.transactions import Transaction

MAX_TIMELINE = 200  # transactions on one page: an appointment changed more often shows the newest


def timeline(transactions: Iterable[Transaction], limit: int = MAX_TIMELINE) -> tuple[list[Transaction], bool]:
    """Every transaction once (a row read twice counts once), newest first, at most `limit`;
    and whether some were left out. Ids are time-ordered, so the id orders them."""
    unique = {(t.mailbox_id, t.id): t for t in transactions}
    ordered = sorted(unique.values(), key=lambda t: (t.created_at or "", t.id), reverse=True)
    return ordered[:limit], len(ordered) > limit


def board_side(publication: dict[str, Any] | None) -> dict[str, Any] | None:
    """The planner's version we last applied (Dime.Scheduler → Outlook): what the board shows."""
    if not publication:
        return None
    assignments = publication.get("assignments") or []
    return {
        "subject": publication.get("subject"),
        "start": iso_utc(publication.get("start")),
        "end": iso_utc(publication.get("end")),
        "appointmentNo": publication.get("appointment_no"),
        "jobNo": publication.get("job_no"),
        "taskNo": publication.get("task_no"),
        "lastModified": iso_utc(publication.get("last_modified")),
        "resources": [a.get("resource_no") or a.get("email") for a in assignments if isinstance(a, dict)],
    }
