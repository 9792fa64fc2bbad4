"""The app's stores on the event loop: the same method names as the sync stores, `async def`.

`AsyncStateStore` mirrors `StateStore` (resources, links, transactions) for the calls of the hot
paths; `.syncstate`, `.eventlinks` and `.transactions` mirror `SyncStateStore`,
`EventLinkStore` and `TransactionStore` likewise. Keys, entity encoding and the ConcurrentUpdate
rules are the sync stores' own functions (one mapping, two transports): a row written by one is
read by the other. Transport, provisioning and healing: `aio_tables.AsyncTables`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.storage.aio_tables import AsyncTables
from shared.adapters.storage.table_rows import conditional
from shared.adapters.storage.tables import (
    FILTER_KEYS,
    RESOURCE_PARTITION,
    ConcurrentUpdate,
    _link_entity,
    _link_from_entity,
    _resource_entity,
    _resource_from_entity,
)
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.ids import encode_key
from shared.core.links import Link
from shared.core.outlook_to_dime.delta import DeltaState
from shared.core.resources import Resource
from shared.core.runs import RunStats
from shared.core.transaction_query import TransactionFilter
from shared.core.transactions import Status, Transaction
from shared.names import EVENT_LINKS_TABLE, LINKS_TABLE, RESOURCES_TABLE, SYNCSTATE_TABLE, TRANSACTIONS_TABLE


class AsyncStateStore:
    def __init__(self, tables: AsyncTables) -> None:
        self.tables = tables
        self.syncstate = AsyncSyncStateStore(tables)
        self.eventlinks = AsyncEventLinkStore(tables)
        self.transactions = AsyncTransactionStore(tables)
        self.bulk = AsyncBulkTransactions(tables)

    # Resources -------------------------------------------------------------------------------

    async def get_resource(self, object_id: str) -> Resource | None:
        entity = await self.tables.get(RESOURCES_TABLE, RESOURCE_PARTITION, object_id.lower())
        return None if entity is None else _resource_from_entity(entity)

    async def list_resources(self) -> list[Resource]:
        entities = await self.tables.query(RESOURCES_TABLE, "PartitionKey eq @pk", {"pk": RESOURCE_PARTITION})
        return [_resource_from_entity(entity) for entity in entities]

    async def put_resource(self, resource: Resource) -> None:
        from azure.data.tables import UpdateMode

        await self.tables.call(RESOURCES_TABLE, "upsert_entity", _resource_entity(resource), mode=UpdateMode.REPLACE)

    # Links -----------------------------------------------------------------------------------

    async def get_link(self, mailbox_id: str, event_id: str) -> Link | None:
        entity = await self.tables.get(LINKS_TABLE, mailbox_id, encode_key(event_id))
        return None if entity is None else _link_from_entity(entity)

    async def links_among(self, mailbox_id: str, event_ids: list[str]) -> dict[str, Link]:
        """The links of these events of one mailbox, by event id: one query per 14 events (a
        filter holds at most 15 comparisons), the queries sent at once."""
        found: dict[str, Link] = {}
        rows = [encode_key(e) for e in dict.fromkeys(event_ids)]
        for entities in await rows_among(self.tables, LINKS_TABLE, mailbox_id, rows):
            for entity in entities:
                link = _link_from_entity(entity)
                found[link.event_id] = link
        return found

    async def save_link(self, link: Link) -> Link:
        """Insert (link.etag None) or replace only if unchanged since read; ConcurrentUpdate otherwise,
        also when the row is gone (another instance deleted it since we read it)."""
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = _link_entity(link)
        try:
            if link.etag is None:
                metadata = await self.tables.call(LINKS_TABLE, "create_entity", entity)
            else:
                metadata = await self.tables.call(
                    LINKS_TABLE, "update_entity", entity, mode=UpdateMode.REPLACE, **conditional(link.etag)
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as error:
            raise ConcurrentUpdate(str(error)) from error
        return replace(link, etag=metadata.get("etag"))

    async def insert_links(self, links: list[Link]) -> None:
        """Insert new links of one mailbox, 100 per table transaction (all or nothing each);
        ConcurrentUpdate when one of a batch exists already (another instance linked it)."""
        from azure.data.tables import TableTransactionError

        for start in range(0, len(links), 100):
            operations = [("create", _link_entity(link)) for link in links[start : start + 100]]
            try:
                await self.tables.submit(LINKS_TABLE, operations)
            except TableTransactionError as error:
                if error.status_code == 409:
                    raise ConcurrentUpdate(str(error)) from error
                raise

    async def delete_link(self, link: Link) -> None:
        """Delete only if unchanged since read (ConcurrentUpdate otherwise); a row already gone is
        the same outcome and is not an error."""
        from azure.core.exceptions import ResourceModifiedError

        try:
            await self.tables.call(
                LINKS_TABLE, "delete_entity", link.mailbox_id, encode_key(link.event_id), **conditional(link.etag)
            )
        except ResourceModifiedError as error:
            raise ConcurrentUpdate(str(error)) from error

    async def links_of(self, mailbox_id: str) -> list[Link]:
        entities = await self.tables.query(LINKS_TABLE, "PartitionKey eq @pk", {"pk": mailbox_id})
        return [_link_from_entity(entity) for entity in entities]

    async def links_of_series(self, mailbox_id: str, series_master_id: str) -> list[Link]:
        """The links of one series' instances (a scan of the mailbox's partition)."""
        query = "PartitionKey eq @pk and SeriesMasterId eq @master"
        entities = await self.tables.query(LINKS_TABLE, query, {"pk": mailbox_id, "master": series_master_id})
        return [_link_from_entity(entity) for entity in entities]

    # Transactions ----------------------------------------------------------------------------

    async def add_transaction(self, transaction: Transaction) -> None:
        await self.transactions.add(transaction)


class AsyncTransactionStore:
    """`TransactionStore`'s writes: the failure index kept in step, outcomes counted in history."""

    def __init__(self, tables: AsyncTables) -> None:
        self.tables = tables

    async def add(self, transaction: Transaction) -> None:
        from azure.data.tables import UpdateMode

        from shared.adapters.storage.history_store import record_async
        from shared.adapters.storage.transactions_store import _index_entity, transaction_entity

        if transaction.status is Status.FAILED:  # index first: a crash between leaves the failure visible
            index = _index_entity(transaction)
            await self.tables.call(TRANSACTIONS_TABLE, "upsert_entity", index, mode=UpdateMode.REPLACE)
        await self.tables.call(TRANSACTIONS_TABLE, "create_entity", transaction_entity(transaction))
        await record_async(self.tables, [transaction])

    async def save(self, transaction: Transaction) -> None:
        """Replace the row after a status change, and keep the failure index in step."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        from shared.adapters.storage.history_store import record_async
        from shared.adapters.storage.transactions_store import FAILED_PARTITION, _index_entity, transaction_entity
        from shared.core.transaction_query import public_id

        row = transaction_entity(transaction)
        if transaction.status is Status.FAILED:
            index = _index_entity(transaction)
            await self.tables.call(TRANSACTIONS_TABLE, "upsert_entity", index, mode=UpdateMode.REPLACE)
            await self.tables.call(TRANSACTIONS_TABLE, "upsert_entity", row, mode=UpdateMode.REPLACE)
        else:
            await self.tables.call(TRANSACTIONS_TABLE, "upsert_entity", row, mode=UpdateMode.REPLACE)
            try:
                key = public_id(transaction.mailbox_id, transaction.id)
                await self.tables.call(TRANSACTIONS_TABLE, "delete_entity", FAILED_PARTITION, key)
            except ResourceNotFoundError:
                pass  # the index row is gone already
        await record_async(self.tables, [transaction])

    async def add_many(self, transactions: Iterable[Transaction]) -> None:
        """Batch insert (table transactions of at most 100 rows per partition, sent at once),
        indexes included; history counted once for the whole batch."""
        from shared.adapters.storage.history_store import record_async
        from shared.adapters.storage.transactions_store import (
            BATCH_LIMIT,
            FAILED_PARTITION,
            _index_entity,
            transaction_entity,
        )

        transactions = list(transactions)
        by_partition: dict[str, list[dict[str, Any]]] = {}
        for transaction in transactions:
            by_partition.setdefault(transaction.mailbox_id, []).append(transaction_entity(transaction))
            if transaction.status is Status.FAILED:
                by_partition.setdefault(FAILED_PARTITION, []).append(_index_entity(transaction))

        def batches(index: bool) -> list[Any]:
            return [
                self.tables.submit(TRANSACTIONS_TABLE, [("upsert", e) for e in entities[start : start + BATCH_LIMIT]])
                for partition, entities in by_partition.items()
                if (partition == FAILED_PARTITION) is index
                for start in range(0, len(entities), BATCH_LIMIT)
            ]

        # The failure index first (as `add` does): a crash between leaves the failures visible. The
        # history counts go with the rows (record_async never raises): one round trip, not two.
        await _all(batches(index=True))
        await _all([*batches(index=False), record_async(self.tables, transactions)])


@dataclass(frozen=True)
class FailedRow:
    """A failure-index row as a page read returned it: the transaction, the row's etag (what a
    claim is conditional on) and its claim (`shared.core.retry_claims`; None when unclaimed)."""

    transaction: Transaction
    etag: str
    claimed_until: str | None


class AsyncBulkTransactions:
    """What a bulk retry does to the transactions table, in few round trips: a page of the failure
    index read once (`$top`), claims and saves as table transactions of up to 100 rows."""

    def __init__(self, tables: AsyncTables) -> None:
        self.tables = tables

    async def failed_keys(self, query: TransactionFilter, after: str | None, limit: int) -> list[str]:
        """The public ids (failure-index row keys) of up to `limit` open failures matching
        `query` after the cursor `after`, in time order: keys only, a request per 1,000."""
        text, parameters = _failed_filter(query, after, None)
        entities = await self.tables.first(TRANSACTIONS_TABLE, text, parameters, limit, select=["RowKey"])
        return [str(e["RowKey"]) for e in entities]

    async def failed_page(
        self, query: TransactionFilter, after: str | None, through: str | None, size: int
    ) -> list[FailedRow]:
        """Up to `size` open failures matching `query` after the cursor `after` and up to
        `through` (public ids; None: unbounded), in the failure index's time order: one request
        unless a filter leaves pages short."""
        from shared.adapters.storage.transactions_store import transaction_from_entity
        from shared.core.retry_claims import CLAIM_FIELD

        text, parameters = _failed_filter(query, after, through)
        entities = await self.tables.first(TRANSACTIONS_TABLE, text, parameters, size)
        return [FailedRow(transaction_from_entity(e), e.metadata["etag"], e.get(CLAIM_FIELD) or None) for e in entities]

    async def claim(self, rows: list[FailedRow], until: str) -> list[FailedRow]:
        """Mark `rows` as taken until `until`, each only if unchanged since read (its etag): one
        table transaction per 100; a transaction refused because one row changed (another worker
        claimed or saved it) is done row by row, keeping those still unchanged. The rows claimed,
        with their new etags (what `release` is conditional on)."""
        from azure.data.tables import TableTransactionError

        claimed: list[FailedRow] = []
        for start in range(0, len(rows), BATCH_ROWS):
            chunk = rows[start : start + BATCH_ROWS]
            try:
                answers = await self.tables.submit(TRANSACTIONS_TABLE, [_claim_operation(r, until) for r in chunk])
            except TableTransactionError as error:
                if error.status_code not in (404, 412):
                    raise
                claimed += [r for r in await asyncio.gather(*(self._claim_one(r, until) for r in chunk)) if r]
                continue
            claimed += [_claimed(row, until, answer.get("etag")) for row, answer in zip(chunk, answers, strict=True)]
        return claimed

    async def _claim_one(self, row: FailedRow, until: str) -> FailedRow | None:
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        operation = _claim_operation(row, until)
        try:
            answer = await self.tables.call(TRANSACTIONS_TABLE, "update_entity", operation[1], **operation[2])
        except (ResourceModifiedError, ResourceNotFoundError):
            return None  # another worker has it, or it was resolved meanwhile
        return _claimed(row, until, answer.get("etag"))

    async def release(self, rows: list[FailedRow]) -> None:
        """Clear our claims on rows not saved since (etag-conditional: a row saved or claimed by
        another worker meanwhile is left as it is), so a redelivery can take them at once."""
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        async def one(row: FailedRow) -> None:
            operation = _claim_operation(row, "")
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                await self.tables.call(TRANSACTIONS_TABLE, "update_entity", operation[1], **operation[2])

        await _all(one(row) for row in rows)

    async def save_many(self, transactions: list[Transaction]) -> None:
        """`AsyncTransactionStore.save` for many rows, as table transactions of up to 100 rows
        per partition, in the same order: the failure index written before the main row of a
        failure, the main row before the index row is deleted on resolution, so a crash between
        the two rounds leaves a failure visible, never hidden. History counted once."""
        from shared.adapters.storage.history_store import record_async
        from shared.adapters.storage.transactions_store import FAILED_PARTITION, _index_entity, transaction_entity
        from shared.core.transaction_query import public_id

        failing = [t for t in transactions if t.status is Status.FAILED]
        resolved = [t for t in transactions if t.status is not Status.FAILED]
        # REPLACE, as `save`: the whole row as the transaction says (a claim or an old payload chunk goes)
        first = [_replace(_index_entity(t)) for t in failing] + [_replace(transaction_entity(t)) for t in resolved]
        second = [_replace(transaction_entity(t)) for t in failing] + [
            ("delete", {"PartitionKey": FAILED_PARTITION, "RowKey": public_id(t.mailbox_id, t.id)}) for t in resolved
        ]
        for operations in (first, second):
            await _all(self._transaction(chunk) for chunk in _by_partition(operations))
        await record_async(self.tables, transactions)

    async def _transaction(self, operations: list[tuple[Any, ...]]) -> None:
        """One table transaction; one whose delete found its row gone already (a manual retry of
        the same row resolved it) is sent row by row, the missing deletes skipped."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableTransactionError, UpdateMode

        try:
            await self.tables.submit(TRANSACTIONS_TABLE, operations)
            return
        except TableTransactionError as error:
            if error.status_code != 404 or not any(operation[0] == "delete" for operation in operations):
                raise

        async def one(kind: str, entity: dict[str, Any]) -> None:
            if kind == "upsert":
                await self.tables.call(TRANSACTIONS_TABLE, "upsert_entity", entity, mode=UpdateMode.REPLACE)
                return
            with contextlib.suppress(ResourceNotFoundError):
                await self.tables.call(TRANSACTIONS_TABLE, "delete_entity", entity["PartitionKey"], entity["RowKey"])

        await _all(one(operation[0], operation[1]) for operation in operations)


BATCH_ROWS = 100  # operations per table transaction


def _failed_filter(query: TransactionFilter, after: str | None, through: str | None) -> tuple[str, dict[str, Any]]:
    from shared.adapters.storage.transactions_store import query_for

    if query.status is not Status.FAILED:
        raise ValueError("a walk of failures reads the failure index only")
    text, parameters = query_for(query)
    if after is not None:
        text += " and RowKey gt @after"
        parameters["after"] = after
    if through is not None:
        text += " and RowKey le @through"
        parameters["through"] = through
    return text, parameters


def _replace(entity: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    from azure.data.tables import UpdateMode

    return ("upsert", entity, {"mode": UpdateMode.REPLACE})


def _claim_operation(row: FailedRow, until: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    from azure.data.tables import UpdateMode

    from shared.adapters.storage.transactions_store import FAILED_PARTITION
    from shared.core.retry_claims import CLAIM_FIELD
    from shared.core.transaction_query import public_id

    t = row.transaction
    entity = {"PartitionKey": FAILED_PARTITION, "RowKey": public_id(t.mailbox_id, t.id), CLAIM_FIELD: until}
    return ("update", entity, {"mode": UpdateMode.MERGE, **conditional(row.etag)})


def _claimed(row: FailedRow, until: str, etag: Any) -> FailedRow:
    if not etag:  # every successful write answers its new etag; without it no release is possible
        raise ValueError("a claim was answered without an etag")
    return replace(row, etag=str(etag), claimed_until=until)


def _by_partition(operations: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """Operations grouped per partition, in order, at most BATCH_ROWS each."""
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for operation in operations:
        groups.setdefault(operation[1]["PartitionKey"], []).append(operation)
    return [rows[start : start + BATCH_ROWS] for rows in groups.values() for start in range(0, len(rows), BATCH_ROWS)]


@dataclass(frozen=True)
class DeltaRows:
    """A mailbox's "delta" row (as a DeltaState) and its "delta-lease" row as read (None: none yet)."""

    state: DeltaState
    lease: Any | None


class AsyncSyncStateStore:
    """`SyncStateStore`'s delta position and lease, tombstones and notification-driven delete
    counts, and its run records."""

    def __init__(self, tables: AsyncTables) -> None:
        self.tables = tables

    # Delta: an idle mailbox's run is three requests (open_delta, take_lease, close_delta) -------

    async def open_delta(self, mailbox_id: str) -> DeltaRows:
        """The delta row and the lease row in one range read: "delta" < "delta-lease", and no row of
        a mailbox's partition sorts between them ("delta-run" and "delta-seen-*" sort after)."""
        from shared.adapters.storage.syncstate_store import DELTA_ROW, LEASE_ROW, delta_state_from

        query = "PartitionKey eq @pk and RowKey ge @low and RowKey le @high"
        rows = await self.tables.query(SYNCSTATE_TABLE, query, {"pk": mailbox_id, "low": DELTA_ROW, "high": LEASE_ROW})
        by_key = {row["RowKey"]: row for row in rows}
        return DeltaRows(delta_state_from(by_key.get(DELTA_ROW)), by_key.get(LEASE_ROW))

    async def take_lease(
        self, mailbox_id: str, lease: Any | None, owner: str, now: datetime, duration: timedelta
    ) -> str | None:
        """Take the mailbox's delta lease as read by `open_delta` (`SyncStateStore.take_lease`'s
        rules: insert, or replace the row as read, so two processes racing cannot both win).
        Returns the etag of our lease row (what `close_delta` gives back), None when another
        owner holds it or won the race."""
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        from shared.adapters.storage.syncstate_store import lease_entity, may_take_lease

        entity = lease_entity(mailbox_id, owner, now + duration)
        try:
            if lease is None:
                metadata = await self.tables.call(SYNCSTATE_TABLE, "create_entity", entity)
            elif not may_take_lease(lease, owner, now):
                return None
            else:
                metadata = await self.tables.call(
                    SYNCSTATE_TABLE,
                    "update_entity",
                    entity,
                    mode=UpdateMode.REPLACE,
                    **conditional(lease.metadata["etag"]),
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        return str(metadata["etag"])

    async def close_delta(self, mailbox_id: str, lease_etag: str, state: DeltaState | None, run: RunStats) -> bool:
        """One table transaction (one partition: all or nothing): the lease given back only if
        still ours (etag-conditional), the delta row when `state` is given (its position moved),
        and the run record. False when the lease is no longer ours (it expired and another run
        took it): nothing was written, and the position belongs to that run now."""
        from azure.data.tables import TableTransactionError, UpdateMode

        from shared.adapters.storage.syncstate_store import (
            DELTA_ROW,
            RUN_ROW_SUFFIX,
            delta_values,
            lease_entity,
            run_values,
        )

        replace_mode = {"mode": UpdateMode.REPLACE}
        operations: list[Any] = [
            ("update", lease_entity(mailbox_id, "", None), {**replace_mode, **conditional(lease_etag)})
        ]
        if state is not None:
            row = {"PartitionKey": mailbox_id, "RowKey": DELTA_ROW, **delta_values(state, run)}
            operations.append(("upsert", row, replace_mode))
        record = {"PartitionKey": mailbox_id, "RowKey": run.kind + RUN_ROW_SUFFIX, **run_values(run)}
        operations.append(("upsert", record, replace_mode))
        try:
            await self.tables.submit(SYNCSTATE_TABLE, operations)  # hand-written $batch (table_batch)
        except TableTransactionError as error:
            if error.status_code not in (404, 412):
                raise
            return False
        return True

    async def seen(self, mailbox_id: str) -> set[str]:
        """`SyncStateStore.seen`: fingerprints a paused full listing has seen."""
        from shared.adapters.storage.syncstate_store import SEEN_ROW_PREFIX

        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        rows = await self.tables.query(
            SYNCSTATE_TABLE, query, {"pk": mailbox_id, "lo": SEEN_ROW_PREFIX, "hi": SEEN_ROW_PREFIX + "~"}
        )
        seen: set[str] = set()
        for row in rows:
            for key, value in row.items():
                if key.startswith("Ids") and value:
                    seen.update(value.split(","))
        return seen

    async def save_seen(self, mailbox_id: str, fingerprints: set[str]) -> None:
        """`SyncStateStore.save_seen`: the old rows removed, the fingerprints written in chunks."""
        from shared.adapters.storage.syncstate_store import SEEN_ROW_PREFIX, seen_rows

        await self.clear_seen(mailbox_id)
        for row, values in enumerate(seen_rows(fingerprints)):
            await self._put(mailbox_id, f"{SEEN_ROW_PREFIX}{row:03d}", values)

    async def clear_seen(self, mailbox_id: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        from shared.adapters.storage.syncstate_store import SEEN_ROW_PREFIX

        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        parameters = {"pk": mailbox_id, "lo": SEEN_ROW_PREFIX, "hi": SEEN_ROW_PREFIX + "~"}
        for row in await self.tables.query(SYNCSTATE_TABLE, query, parameters, select=["PartitionKey", "RowKey"]):
            with contextlib.suppress(ResourceNotFoundError):
                await self.tables.call(SYNCSTATE_TABLE, "delete_entity", mailbox_id, row["RowKey"])

    async def _put(self, mailbox_id: str, row: str, values: dict[str, Any]) -> None:
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": mailbox_id, "RowKey": row, **values}
        await self.tables.call(SYNCSTATE_TABLE, "upsert_entity", entity, mode=UpdateMode.REPLACE)

    async def save_run(self, run: RunStats) -> None:
        from shared.adapters.storage.syncstate_store import RUN_ROW_SUFFIX, run_values

        await self._put(run.mailbox_id, run.kind + RUN_ROW_SUFFIX, run_values(run))

    async def add_tombstone(self, mailbox_id: str, event_id: str, now: datetime) -> None:
        from shared.adapters.storage.syncstate_store import tombstone_row, tombstone_values

        await self._put(mailbox_id, tombstone_row(event_id), tombstone_values(event_id, now))

    async def is_tombstoned(self, mailbox_id: str, event_id: str) -> bool:
        from shared.adapters.storage.syncstate_store import names_tombstone, tombstone_row

        return names_tombstone(await self.tables.get(SYNCSTATE_TABLE, mailbox_id, tombstone_row(event_id)), event_id)

    async def tombstoned_events(self, mailbox_id: str) -> set[str]:
        from shared.adapters.storage.syncstate_store import tombstones_query

        query, parameters = tombstones_query(mailbox_id)
        rows = await self.tables.query(SYNCSTATE_TABLE, query, parameters, select=["EventId"])
        return {str(row.get("EventId") or "") for row in rows}

    async def tombstoned_among(self, mailbox_id: str, event_ids: list[str]) -> set[str]:
        """Which of these events of one mailbox have a tombstone: one query per 14 events (as
        `links_among`), the queries sent at once. Lets a batch of new events skip a blind
        tombstone delete each (a round trip per event) when none exists, as is usual."""
        from shared.adapters.storage.syncstate_store import names_tombstone, tombstone_row

        wanted = set(event_ids)
        rows = [tombstone_row(e) for e in dict.fromkeys(event_ids)]
        return {
            str(row.get("EventId"))
            for found in await rows_among(self.tables, SYNCSTATE_TABLE, mailbox_id, rows, select=["RowKey", "EventId"])
            for row in found
            if row.get("EventId") in wanted and names_tombstone(row, str(row.get("EventId")))
        }

    async def remove_tombstone(self, mailbox_id: str, event_id: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        from shared.adapters.storage.syncstate_store import tombstone_row

        with contextlib.suppress(ResourceNotFoundError):
            await self.tables.call(SYNCSTATE_TABLE, "delete_entity", mailbox_id, tombstone_row(event_id))

    async def recent_webhook_deletes(self, mailbox_id: str, now: datetime) -> list[str]:
        from shared.adapters.storage.syncstate_store import WEBHOOK_DELETES_ROW, recent_deletes

        return recent_deletes(await self.tables.get(SYNCSTATE_TABLE, mailbox_id, WEBHOOK_DELETES_ROW), now)

    async def note_webhook_delete(self, mailbox_id: str, now: datetime) -> None:
        """Remember one more delete (last writer wins: concurrent deletes may be undercounted)."""
        from shared.adapters.storage.syncstate_store import WEBHOOK_DELETES_ROW, one_more_delete

        recent = await self.recent_webhook_deletes(mailbox_id, now)
        await self._put(mailbox_id, WEBHOOK_DELETES_ROW, one_more_delete(recent, now))


class AsyncEventLinkStore:
    """`EventLinkStore` (Dime.Scheduler → Outlook state, one partition per appointment)."""

    def __init__(self, tables: AsyncTables) -> None:
        self.tables = tables

    async def read(self, guid: str) -> tuple[AppointmentState | None, dict[str, EventLink]]:
        from shared.adapters.storage.event_links_store import (
            appointment_rows,
            needs_origin_look_up,
            with_outlook_origin,
        )

        entities = await self.tables.query(EVENT_LINKS_TABLE, "PartitionKey eq @pk", {"pk": guid})
        state, links = appointment_rows(entities)
        if needs_origin_look_up(state, links) and await self.is_outlook_origin(guid):
            state = with_outlook_origin(state, guid)
        return state, links

    async def save_state(self, state: AppointmentState) -> AppointmentState:
        from shared.adapters.storage.event_links_store import _state_entity

        return replace(state, etag=await self._save(_state_entity(state), state.etag))

    async def save_link(self, link: EventLink) -> EventLink:
        from shared.adapters.storage.event_links_store import _link_entity as event_link_entity

        return replace(link, etag=await self._save(event_link_entity(link), link.etag))

    async def mark_outlook_origin(self, guid: str) -> None:
        """The Outlook → Dime.Scheduler path created this appointment: never write it back."""
        await self.mark_outlook_origins([guid])

    async def mark_outlook_origins(self, guids: list[str]) -> None:
        """One table transaction per shard and 100 marks, sent at once (see EventLinkStore)."""
        from shared.adapters.storage.event_links_store import origin_batches

        await _all(self.tables.submit(EVENT_LINKS_TABLE, batch) for batch in origin_batches(guids))

    async def is_outlook_origin(self, guid: str) -> bool:
        from shared.adapters.storage.event_links_store import origin_partition

        mark = await self.tables.get(EVENT_LINKS_TABLE, origin_partition(guid), guid, select=["RowKey"])
        return mark is not None

    async def links(self) -> list[EventLink]:
        from shared.adapters.storage.event_links_store import ORIGIN_PREFIX, STATE_ROW, _link_from

        query = "RowKey ne @row and (PartitionKey lt @origins or PartitionKey ge @after )"  # the SDK splits on spaces
        parameters = {"row": STATE_ROW, "origins": ORIGIN_PREFIX, "after": ORIGIN_PREFIX[:-1] + chr(ord("-") + 1)}
        return [_link_from(entity) for entity in await self.tables.query(EVENT_LINKS_TABLE, query, parameters)]

    async def states(self) -> list[AppointmentState]:
        from shared.adapters.storage.event_links_store import STATE_ROW, _state_from

        entities = await self.tables.query(EVENT_LINKS_TABLE, "RowKey eq @row", {"row": STATE_ROW})
        return [_state_from(entity) for entity in entities]

    async def _save(self, entity: dict[str, Any], etag: str | None) -> str | None:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        try:
            if etag is None:
                metadata = await self.tables.call(EVENT_LINKS_TABLE, "create_entity", entity)
            else:
                metadata = await self.tables.call(
                    EVENT_LINKS_TABLE, "update_entity", entity, mode=UpdateMode.REPLACE, **conditional(etag)
                )
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise ConcurrentUpdate(str(error)) from error
        return metadata.get("etag")


async def rows_among(
    tables: AsyncTables, table: str, partition: str, row_keys: list[str], select: list[str] | None = None
) -> list[list[Any]]:
    """The rows of one partition with these keys: one query per FILTER_KEYS keys (a filter holds
    at most 15 comparisons), the queries sent at once; a list of rows per query."""
    queries = []
    for start in range(0, len(row_keys), FILTER_KEYS):
        chunk = row_keys[start : start + FILTER_KEYS]
        parameters = {"pk": partition, **{f"r{n}": key for n, key in enumerate(chunk)}}
        keys = " or ".join(f"RowKey eq @r{n}" for n in range(len(chunk)))
        queries.append(tables.query(table, f"PartitionKey eq @pk and ( {keys} )", parameters, select=select))
    return list(await asyncio.gather(*queries))


async def _all(calls: Iterable[Any]) -> None:
    """Await every call concurrently; when several fail, every one has finished before the first
    error is raised (the writes are idempotent: a redelivery repeats them)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
