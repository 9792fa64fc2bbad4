"""Debouncing resync requests per mailbox: row "resync-requested" of the mailbox's syncstate partition.

A flood of `missed` lifecycle items (or of stray ones a leaked clientState can send) must be one
delta run, not thousands. The row remembers when the last debounced request was queued; an
etag-conditional write makes concurrent workers agree on which one queues.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.names import SYNCSTATE_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore

RESYNC_REQUEST_ROW = "resync-requested"


def claim_resync(store: StateStore, mailbox_id: str, now: datetime, window: timedelta) -> bool:
    """True when this caller may queue a resync now (none was queued within `window`)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    table = store.table(SYNCSTATE_TABLE)
    entity = {"PartitionKey": mailbox_id, "RowKey": RESYNC_REQUEST_ROW, "RequestedAt": now.isoformat()}
    try:
        existing = table.get_entity(mailbox_id, RESYNC_REQUEST_ROW)
    except ResourceNotFoundError:
        try:
            table.create_entity(entity)
        except ResourceExistsError:
            return False  # another worker claimed it this instant
        return True
    try:
        last = datetime.fromisoformat(str(existing.get("RequestedAt") or ""))
    except ValueError:
        last = None
    if last is not None and now - last < window:
        return False
    etag = existing.metadata.get("etag")
    try:
        table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        return False
    return True
