"""Debouncing resync requests per mailbox: row "resync-requested" of the mailbox's syncstate partition.

A flood of `missed` lifecycle items (or of stray ones a leaked clientState can send) must be one
delta run, not thousands. But a `missed` means "notifications after some moment were lost": a
resync that has already *started* may have read the calendar before that moment, so it does not
cover it. Hence the row has a state, not a time window:

- "pending": a resync was queued and no worker has picked it up yet; a request now is covered by
  it (debounced);
- "started": the worker took it (`mark_resync_started`, before reading anything); a request now
  queues another resync.

A pending row older than PENDING_STALE_AFTER is claimed again: its message may have been lost (a
send that failed after the claim) or poisoned. An etag-conditional write makes concurrent workers
agree on which one queues.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.names import SYNCSTATE_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore

RESYNC_REQUEST_ROW = "resync-requested"
PENDING = "pending"
STARTED = "started"
PENDING_STALE_AFTER = timedelta(minutes=15)


def claim_resync(store: StateStore, mailbox_id: str, now: datetime) -> bool:
    """True when this caller may queue a resync now: none is pending (or the pending one is stale)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    table = store.table(SYNCSTATE_TABLE)
    entity = {
        "PartitionKey": mailbox_id,
        "RowKey": RESYNC_REQUEST_ROW,
        "State": PENDING,
        "RequestedAt": now.isoformat(),
    }
    try:
        existing = table.get_entity(mailbox_id, RESYNC_REQUEST_ROW)
    except ResourceNotFoundError:
        try:
            table.create_entity(entity)
        except ResourceExistsError:
            return False  # another worker claimed it this instant
        return True
    if _covered_by_pending(existing, now):
        return False
    etag = existing.metadata.get("etag")
    try:
        table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        return False
    return True


def _covered_by_pending(existing: dict, now: datetime) -> bool:
    """Whether the row is a pending resync that has not gone stale. A row of an older version (no
    State: it only held RequestedAt) or an unreadable time covers nothing: read again, claim."""
    if existing.get("State") != PENDING:
        return False
    try:
        requested = datetime.fromisoformat(str(existing.get("RequestedAt") or ""))
    except ValueError:
        return False
    return now - requested < PENDING_STALE_AFTER


def release_resync(store: StateStore, mailbox_id: str) -> None:
    """Undo a claim whose message could not be sent (best effort: staleness covers a failure here)."""
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        store.table(SYNCSTATE_TABLE).delete_entity(mailbox_id, RESYNC_REQUEST_ROW)


def mark_resync_started(store: StateStore, mailbox_id: str, now: datetime) -> None:
    """The resync worker took a message for this mailbox: later requests are no longer covered."""
    from azure.data.tables import UpdateMode

    entity = {"PartitionKey": mailbox_id, "RowKey": RESYNC_REQUEST_ROW, "State": STARTED, "StartedAt": now.isoformat()}
    store.table(SYNCSTATE_TABLE).upsert_entity(entity, mode=UpdateMode.MERGE)
