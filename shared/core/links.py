"""A link: one Outlook event paired with one Dime.Scheduler appointment.

It records the last *synchronised* version (changeKey and content hash), written only after
Dime.Scheduler accepted the write, so a failed write is retried rather than forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OUTLOOK_ORIGIN = "outlook"  # a link whose event a person made in Outlook
DIME_ORIGIN = "dime"  # a link whose event this app wrote for a planner appointment


@dataclass(frozen=True)
class Link:
    mailbox_id: str
    event_id: str
    appointment_guid: str
    origin: str  # "outlook" or "dime"
    change_key: str | None
    content_hash: str | None
    resource_email: str
    synced_at: str  # ISO 8601 UTC
    etag: str | None = None  # storage concurrency token; None = not stored yet
    series_master_id: str | None = None  # occurrences and exceptions: their series master
    appointment_id: str | None = None  # Dime.Scheduler's internal id (Appointments[].Id of the answer)
    kept_values: dict[str, str] | None = field(default=None, compare=False)  # last typed values sent
    # Written by an instance that lost this link to another one after writing the appointment: what
    # it wrote is on the board, the event may be gone. Whoever reads it next proves the event is in
    # the primary calendar before trusting it (the triage), so a redelivery deletes that appointment.
    unproven: bool = False
    # What the console shows (issue 19), written with the link, never read back by the sync: the
    # subject as the board shows it (a private event's masked one) and the start (ISO 8601 UTC).
    subject: str | None = field(default=None, compare=False)
    start: str | None = field(default=None, compare=False)
