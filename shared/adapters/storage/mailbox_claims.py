"""A mailbox's claim per timer kind: row "<kind>-claim" of the mailbox's syncstate partition.

The chunk worker (usecases/fanout.py) takes it before running a mailbox's delta, reconcile or
renewal and finishes it after: Run (the timer run), Owner (the worker; "" once finished),
ExpiresAt. It keeps two instances off the same mailbox (a chunk delivered twice at once, or a slow
run overlapping the next), and makes a chunk delivered again after it finished cost one read per
mailbox (the row says this run is done). Etag-conditional, like the delta lease beside it: two
workers that read the same row cannot both take it. The decision itself is pure
(core/fanout.py `claim_verdict`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core.fanout import Claim, ClaimRow, claim_verdict
from shared.names import SYNCSTATE_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore

CLAIM_ROW_SUFFIX = "-claim"


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def take_claim(
    store: StateStore, kind: str, mailbox_id: str, run: str, owner: str, now: datetime, expires_at: datetime
) -> tuple[Claim, str | None]:
    """TAKE (with the etag that finishing needs), DONE or HELD. A lost race is HELD."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    table = store.table(SYNCSTATE_TABLE)
    row_key = kind + CLAIM_ROW_SUFFIX
    entity = {
        "PartitionKey": mailbox_id,
        "RowKey": row_key,
        "Run": run,
        "Owner": owner,
        "ExpiresAt": expires_at.isoformat(),
    }
    try:
        current = table.get_entity(mailbox_id, row_key)
    except ResourceNotFoundError:
        try:
            written = table.create_entity(entity)
        except ResourceExistsError:
            return Claim.HELD, None
        return Claim.TAKE, _etag(written)
    row = ClaimRow(str(current.get("Run") or ""), str(current.get("Owner") or ""), _time(current.get("ExpiresAt")))
    verdict = claim_verdict(row, run, now)
    if verdict is not Claim.TAKE:
        return verdict, None
    try:
        written = table.update_entity(
            entity,
            mode=UpdateMode.REPLACE,
            etag=current.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return Claim.HELD, None
    return Claim.TAKE, _etag(written)


def finish_claim(store: StateStore, kind: str, mailbox_id: str, run: str, etag: str | None) -> bool:
    """Mark the run done (Owner ""), only if the row is still as we wrote it: a claim that expired
    and was taken by another worker is theirs. Returns whether it was marked."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    if etag is None:
        return False
    entity = {"PartitionKey": mailbox_id, "RowKey": kind + CLAIM_ROW_SUFFIX, "Run": run, "Owner": "", "ExpiresAt": ""}
    try:
        store.table(SYNCSTATE_TABLE).update_entity(
            entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def _etag(written: Any) -> str | None:
    return written.get("etag") if isinstance(written, dict) else None
