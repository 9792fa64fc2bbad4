"""The Dime.Scheduler → Outlook records: per appointment, and per (appointment, resource).

`EventLink` mirrors the Outlook → Dime.Scheduler `Link` the other way round: one appointment paired
with one Outlook event in one mailbox, remembering what we last *sent* (`sent_hash`), written only
after Graph accepted the write. `generation` counts deletes, so a re-create gets a fresh
transactionId; `pending` is the intent a create writes before it is sent. The Outlook side of the
same pair is an ordinary `Link` with origin "dime" (keyed by mailbox and event), which is what the
Outlook → Dime.Scheduler path consults for echoes.

`AppointmentState` is the appointment's own row: the last applied publication (to rebuild the
planner's version when a person edits it in Outlook), its LastModifiedDate, and the tombstone a
delete leaves so a late or replayed publication cannot resurrect it. `outlook_origin` marks an
appointment the Outlook → Dime.Scheduler path created: it is never written back to Outlook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventLink:
    appointment_guid: str
    mailbox_id: str
    resource: str  # resource number, else e-mail (what the tag names)
    resource_email: str
    event_id: str | None  # None: no event now (deleted; the row keeps the generation)
    generation: int
    sent_hash: str | None
    start: str | None  # ISO UTC of the event, for the reconcile window and the unmatched report
    synced_at: str
    dismissed: bool = False  # deleted in Outlook under DIME_OUTLOOK_EDITS=keep: stays away until the planner changes it
    etag: str | None = None
    # The generation of a create that may have reached Graph without this row naming its event: written
    # before the POST (the intent), cleared once the row names the event or the event was found and
    # deleted. Whoever reads it finds the event by its tag (every later delivery, stale or not, and the
    # reconcile), so a crash or a lost race between a create and this row's save leaves no copy behind.
    pending: int | None = None
    subject: str | None = None  # the event's subject as placed (after rules): what the console shows


@dataclass(frozen=True)
class AppointmentState:
    guid: str
    last_modified: str | None
    deleted: bool
    publication: dict[str, Any] | None  # Publication.to_message() of the last applied one
    outlook_origin: bool = False
    unmatched: tuple[tuple[str, str], ...] = ()  # (resource, reason): assigned but no calendar
    updated_at: str | None = None
    etag: str | None = None
