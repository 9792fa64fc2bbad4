"""What the chunk worker (usecases/fanout.py) reads and writes around a chunk: its mailboxes'
directory rows, and their claims.

A claim is a row of the syncstate table, partition "~claims-<kind>" (after every mailbox
partition), RowKey the mailbox id: Run (the timer run), Owner (the worker; "" once finished),
ExpiresAt. It keeps two instances off the same mailbox (a chunk delivered twice at once, or a slow
run overlapping the next), and makes a chunk delivered again after it finished cost no work beyond
reading its claims (the rows say this run is done). Writes are etag-conditional, like the delta
lease: two workers that read the same row cannot both take it. The decision is pure
(core/fanout.py `claim_verdict`).

Cost: a chunk's mailbox ids are contiguous in RowKey order (the timer sends them sorted), so its
directory rows and its claims are each one range query, and taking and finishing its claims one
table transaction each (every claim of a kind shares a partition): four storage requests per
chunk instead of four per mailbox. A range read stops after a bound (a forged message naming a
wide range costs no more than a genuine one; what the bound left out is read by point reads), and
a transaction that loses a race to another worker falls back to one conditional write per row.
Every call is on the event loop (`aio_tables.AsyncTables`, `Services.astore.tables`): no thread
per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core.fanout import Claim, ClaimRow, claim_verdict
from shared.names import RESOURCES_TABLE, SYNCSTATE_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.aio_tables import AsyncTables
    from shared.core.resources import Resource

CLAIMS_PARTITION_PREFIX = "~claims-"
RANGE_SLACK = 10  # rows a range read may hold beyond the ids asked for (mailboxes onboarded since)


def claims_partition(kind: str) -> str:
    return CLAIMS_PARTITION_PREFIX + kind


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


async def _in_range(
    tables: AsyncTables, name: str, partition: str, ids: list[str], select: list[str] | None
) -> dict[str, Any]:
    """The rows of `partition` whose RowKey is one of `ids`: one range query from the lowest to the
    highest id, read for at most len(ids) + RANGE_SLACK rows; ids the bound left out are read one
    by one. A missing row is absent from the answer."""
    wanted = set(ids)
    found: dict[str, Any] = {}
    if not ids:
        return found
    bound = len(ids) + RANGE_SLACK
    rows = await tables.query(
        name,
        "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
        {"pk": partition, "low": min(ids), "high": max(ids)},
        select=select,
        limit=bound,
    )
    for row in rows:
        if row["RowKey"] in wanted:
            found[row["RowKey"]] = row
    if len(rows) >= bound:
        for missing in sorted(wanted - found.keys()):
            row = await tables.get(name, partition, missing, select=select)
            if row is not None:
                found[missing] = row
    return found


async def resources_named(tables: AsyncTables, mailbox_ids: list[str]) -> dict[str, Resource | None]:
    """The directory's rows of these mailboxes (None: not onboarded)."""
    from shared.adapters.storage.tables import RESOURCE_PARTITION, _resource_from_entity

    rows = await _in_range(tables, RESOURCES_TABLE, RESOURCE_PARTITION, mailbox_ids, None)
    return {i: (_resource_from_entity(rows[i]) if i in rows else None) for i in mailbox_ids}


def _entity(kind: str, mailbox_id: str, run: str, owner: str, expires_at: datetime | None) -> dict[str, Any]:
    return {
        "PartitionKey": claims_partition(kind),
        "RowKey": mailbox_id,
        "Run": run,
        "Owner": owner,
        "ExpiresAt": expires_at.isoformat() if expires_at else "",
    }


def _row(entity: Any) -> ClaimRow:
    return ClaimRow(str(entity.get("Run") or ""), str(entity.get("Owner") or ""), _time(entity.get("ExpiresAt")))


def _conditional(etag: str) -> dict[str, Any]:
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    return {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}


async def take_claims(
    tables: AsyncTables,
    kind: str,
    mailbox_ids: list[str],
    run: str,
    owner: str,
    now: datetime,
    expires_at: datetime,
) -> dict[str, tuple[Claim, str | None]]:
    """Per mailbox: TAKE (with the etag finishing needs), DONE or HELD. Those free are taken in one
    transaction; if another worker wrote one of them meanwhile, each is tried on its own (a lost
    race is HELD)."""
    from azure.data.tables import TableTransactionError

    select = ["RowKey", "Run", "Owner", "ExpiresAt"]
    current = await _in_range(tables, SYNCSTATE_TABLE, claims_partition(kind), mailbox_ids, select)
    out: dict[str, tuple[Claim, str | None]] = {}
    free: list[str] = []
    for mailbox in mailbox_ids:
        verdict = claim_verdict(_row(current[mailbox]) if mailbox in current else None, run, now)
        if verdict is Claim.TAKE:
            free.append(mailbox)
        else:
            out[mailbox] = (verdict, None)
    operations: list[Any] = []
    for mailbox in free:
        entity = _entity(kind, mailbox, run, owner, expires_at)
        row = current.get(mailbox)
        # each row's etag is answered (by the hand-written transaction or the SDK): what finishing needs
        operations.append(
            ("create", entity, {}) if row is None else ("update", entity, _conditional(row.metadata["etag"]))
        )
    if not operations:
        return out
    try:
        written = await tables.call(SYNCSTATE_TABLE, "submit_transaction", operations)
    except TableTransactionError:
        for mailbox in free:
            out[mailbox] = await take_claim(tables, kind, mailbox, run, owner, now, expires_at)
        return out
    for mailbox, metadata in zip(free, written or [{}] * len(free), strict=True):
        out[mailbox] = (Claim.TAKE, metadata.get("etag"))  # None: not finished (expires instead)
    return out


async def take_claim(
    tables: AsyncTables, kind: str, mailbox_id: str, run: str, owner: str, now: datetime, expires_at: datetime
) -> tuple[Claim, str | None]:
    """One mailbox's claim, read and written on its own."""
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

    entity = _entity(kind, mailbox_id, run, owner, expires_at)
    current = await tables.get(SYNCSTATE_TABLE, claims_partition(kind), mailbox_id)
    if current is None:
        try:
            return Claim.TAKE, _etag(await tables.call(SYNCSTATE_TABLE, "create_entity", entity))
        except ResourceExistsError:
            return Claim.HELD, None
    verdict = claim_verdict(_row(current), run, now)
    if verdict is not Claim.TAKE:
        return verdict, None
    try:
        written = await tables.call(SYNCSTATE_TABLE, "update_entity", entity, **_conditional(current.metadata["etag"]))
    except (ResourceModifiedError, ResourceNotFoundError):
        return Claim.HELD, None
    return Claim.TAKE, _etag(written)


async def finish_claims(tables: AsyncTables, kind: str, finished: Iterable[tuple[str, str, str | None]]) -> None:
    """(mailbox, run, etag) per claim: marked with that run and no owner ("" run: given back
    unfinished), only where the row is still as we wrote it (a claim that expired and was taken by
    another worker is theirs). One transaction; if one row changed meanwhile, row by row."""
    from azure.data.tables import TableTransactionError

    rows = [(mailbox, run, etag) for mailbox, run, etag in finished if etag]
    if not rows:
        return
    operations = [("update", _entity(kind, m, run, "", None), _conditional(etag)) for m, run, etag in rows]
    try:
        await tables.submit(SYNCSTATE_TABLE, operations)  # hand-written $batch (table_batch): no etags needed
    except TableTransactionError:
        for mailbox, run, etag in rows:
            await finish_claim(tables, kind, mailbox, run, etag)


async def finish_claim(tables: AsyncTables, kind: str, mailbox_id: str, run: str, etag: str | None) -> bool:
    """One claim marked done by `run` ("" gives it back unfinished), if still ours."""
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    if etag is None:
        return False
    try:
        entity = _entity(kind, mailbox_id, run, "", None)
        await tables.call(SYNCSTATE_TABLE, "update_entity", entity, **_conditional(etag))
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def _etag(written: Any) -> str | None:
    return written.get("etag") if isinstance(written, dict) else None
