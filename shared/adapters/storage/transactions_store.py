"""The transactions table: every attempted write, and the indexes that make the admin queries cheap.

Layout (one table, `transactions`):

* Main row: PartitionKey = mailbox object id ("unknown" for a poisoned message without one),
  RowKey = the time-ordered transaction id (`20261122T074955123456Z-<hex>`). "One mailbox's" is one
  partition; "a date range" is a RowKey range (within a partition, or as a filtered scan across
  mailboxes when no mailbox is given).
* Open-failure index: PartitionKey = "~failed", RowKey = the public id (`<row key>.<b64 mailbox>`,
  so it is time-ordered too), a full copy of the row plus `Mailbox` and `TxRowKey`. "Failed ones"
  (the admin list, the retry timer, the counts by code) is one partition query, however large the
  table grows. Every status change writes both: the index row exists exactly while the main row's
  status is `failed`. Writes go index-first on failure and main-first on resolution, so a crash
  between the two leaves a failure visible (and the retry timer repairs it), never hidden.
* Poison fingerprints: PartitionKey = "~poison", RowKey = sha256 of queue + message, pointing at the
  transaction of a poisoned message, so the same message poisoning again reopens it.
* Last transient errors: PartitionKey = "~lasterror", RowKey = the same fingerprint, the code and
  message of the last transient failure of a queue message (written only when a delivery fails), so
  the poison handler can say why the message poisoned. Purged by the retry timer once older than
  TOMBSTONE_RETENTION_DAYS (at least 14 days: a message's 7 days in its queue and 7 in the poison
  queue's).

Index partitions start with "~", which sorts after every mailbox id, so a scan across mailboxes is
`PartitionKey lt '~'`. Payloads larger than one string property are split across properties.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.adapters.storage.history_store import HistoryStore, history_store
from shared.adapters.storage.table_rows import HasStore, delete_unchanged
from shared.core.transaction_query import TransactionFilter, public_id, row_key_bound
from shared.core.transactions import Status, Transaction
from shared.names import TRANSACTIONS_TABLE

if TYPE_CHECKING:
    from azure.data.tables import TableClient

INDEX_PREFIX = "~"
FAILED_PARTITION = "~failed"
POISON_PARTITION = "~poison"
LAST_ERROR_PARTITION = "~lasterror"
PAYLOAD_CHUNK = 30_000  # characters; a string property holds 64 KiB (32K UTF-16 characters)
MAX_PAYLOAD_CHUNKS = 12
BATCH_LIMIT = 100
MAX_SHOWN_CHARS = 400  # subject (Graph caps it at 255), display name, UPN: what the console shows


def transaction_store(services: HasStore) -> TransactionStore:
    return TransactionStore(services.store.table(TRANSACTIONS_TABLE), history_store(services.store))


class TransactionStore:
    """Every write also counts its succeeded/failed outcomes in the history table (the Overview's
    charts): one extra round trip per `add`/`save`, one per `add_many` call whatever its size."""

    def __init__(self, table: TableClient, history: HistoryStore) -> None:
        self._table = table
        self._history = history

    # Writes ---------------------------------------------------------------------------------

    def add(self, transaction: Transaction) -> None:
        from azure.data.tables import UpdateMode

        if transaction.status is Status.FAILED:
            self._table.upsert_entity(_index_entity(transaction), mode=UpdateMode.REPLACE)
        self._table.create_entity(transaction_entity(transaction))
        self._history.record([transaction])

    def save(self, transaction: Transaction) -> None:
        """Replace the row after a status change, and keep the failure index in step."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        if transaction.status is Status.FAILED:
            self._table.upsert_entity(_index_entity(transaction), mode=UpdateMode.REPLACE)
            self._table.upsert_entity(transaction_entity(transaction), mode=UpdateMode.REPLACE)
            self._history.record([transaction])
            return
        self._table.upsert_entity(transaction_entity(transaction), mode=UpdateMode.REPLACE)
        with contextlib.suppress(ResourceNotFoundError):  # the index row is gone already
            self._table.delete_entity(FAILED_PARTITION, public_id(transaction.mailbox_id, transaction.id))
        self._history.record([transaction])

    def add_many(self, transactions: Iterable[Transaction]) -> None:
        """Batch insert (table transactions of at most 100 rows per partition), indexes included."""
        by_partition: dict[str, list[dict[str, Any]]] = {}
        transactions = list(transactions)
        for transaction in transactions:
            by_partition.setdefault(transaction.mailbox_id, []).append(transaction_entity(transaction))
            if transaction.status is Status.FAILED:
                by_partition.setdefault(FAILED_PARTITION, []).append(_index_entity(transaction))
        for entities in by_partition.values():
            for start in range(0, len(entities), BATCH_LIMIT):
                self._table.submit_transaction([("upsert", e) for e in entities[start : start + BATCH_LIMIT]])
        self._history.record(transactions)  # once for the whole batch

    # Reads ----------------------------------------------------------------------------------

    def get(self, mailbox_id: str, row_key: str) -> Transaction | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return transaction_from_entity(self._table.get_entity(mailbox_id, row_key))
        except ResourceNotFoundError:
            return None

    def of_mailbox(self, mailbox_id: str) -> Iterator[Transaction]:
        for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": mailbox_id}):
            yield transaction_from_entity(entity)

    def failed(self) -> Iterator[Transaction]:
        """Every open failure, from the index partition (oldest first)."""
        for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": FAILED_PARTITION}):
            yield transaction_from_entity(entity)

    def failed_entities(self, select: list[str]) -> Iterator[dict[str, Any]]:
        yield from self._table.query_entities("PartitionKey eq @pk", parameters={"pk": FAILED_PARTITION}, select=select)

    def page(
        self, query: TransactionFilter, page_size: int, token: dict[str, Any] | None
    ) -> tuple[list[Transaction], dict[str, Any] | None]:
        """One page of matching transactions and the table's continuation token (None at the end)."""
        text, parameters = query_for(query)
        pager = self._table.query_entities(text, parameters=parameters, results_per_page=page_size).by_page(
            continuation_token=token
        )
        items: list[Transaction] = []
        for entities in pager:
            items = [transaction_from_entity(e) for e in entities]
            if items or not pager.continuation_token:
                break  # a scan may answer an empty page with a token: follow it
        return items, pager.continuation_token

    def count(self, query: TransactionFilter, limit: int) -> int:
        """How many transactions match (reading only the keys), counting at most `limit`."""
        text, parameters = query_for(query)
        total = 0
        for _ in self._table.query_entities(text, parameters=parameters, select=["RowKey"]):
            total += 1
            if total >= limit:
                break
        return total

    def matching(self, query: TransactionFilter, *, after: str | None = None) -> Iterator[Transaction]:
        """Every match; `after` (failed only: a public id) continues a walk of the failure index in
        its time order, so a bulk retry visits each row once even when it fails again."""
        text, parameters = query_for(query)
        if after is not None:
            if query.status is not Status.FAILED:
                raise ValueError("a cursor walks the failure index only")
            text += " and RowKey gt @after"
            parameters["after"] = after
        for entity in self._table.query_entities(text, parameters=parameters):
            yield transaction_from_entity(entity)

    # Poison fingerprints --------------------------------------------------------------------

    def by_fingerprint(self, fingerprint: str) -> Transaction | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            pointer = self._table.get_entity(POISON_PARTITION, fingerprint)
        except ResourceNotFoundError:
            return None
        return self.get(pointer["Mailbox"], pointer["TxRowKey"])

    def remember_fingerprint(self, fingerprint: str, transaction: Transaction) -> None:
        from azure.data.tables import UpdateMode

        pointer = {
            "PartitionKey": POISON_PARTITION,
            "RowKey": fingerprint,
            "Mailbox": transaction.mailbox_id,
            "TxRowKey": transaction.id,
        }
        self._table.upsert_entity(pointer, mode=UpdateMode.REPLACE)

    def remember_last_error(self, fingerprint: str, code: str, message: str, deliveries: int) -> None:
        from azure.data.tables import UpdateMode

        note = {
            "PartitionKey": LAST_ERROR_PARTITION,
            "RowKey": fingerprint,
            "ErrorCode": code,
            "Message": message[:4096],
            "Deliveries": deliveries,
        }
        self._table.upsert_entity(note, mode=UpdateMode.REPLACE)

    def last_error(self, fingerprint: str) -> tuple[str, str, int] | None:
        """(code, message, deliveries) of the last transient failure of that message, if any."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            note = self._table.get_entity(LAST_ERROR_PARTITION, fingerprint)
        except ResourceNotFoundError:
            return None
        return str(note.get("ErrorCode") or ""), str(note.get("Message") or ""), int(note.get("Deliveries") or 0)

    def forget_last_error(self, fingerprint: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(LAST_ERROR_PARTITION, fingerprint)

    def expired_last_errors(self, before: datetime, limit: int) -> list[Any]:
        """Up to `limit` last-error notes written before `before` (keys and etags): notes of
        messages that succeeded without a redelivery being seen, or were removed from a queue by
        hand, are never forgotten otherwise."""
        query = "PartitionKey eq @pk and Timestamp lt @before"
        rows = self._table.query_entities(
            query, parameters={"pk": LAST_ERROR_PARTITION, "before": before}, select=["PartitionKey", "RowKey"]
        )
        return list(itertools.islice(rows, limit))

    def delete_rows(self, rows: list[Any]) -> tuple[int, int]:
        return delete_unchanged(self._table, rows)


def query_for(query: TransactionFilter) -> tuple[str, dict[str, Any]]:
    """The OData filter: the failure index for status=failed, a mailbox's partition, or a scan."""
    clauses: list[str] = []
    parameters: dict[str, Any] = {}
    if query.status is Status.FAILED:
        clauses.append("PartitionKey eq @pk")
        parameters["pk"] = FAILED_PARTITION
        if query.mailbox:
            clauses.append("Mailbox eq @mailbox")
            parameters["mailbox"] = query.mailbox
    else:
        if query.mailbox:
            clauses.append("PartitionKey eq @pk")
            parameters["pk"] = query.mailbox
        else:
            clauses.append("PartitionKey lt @index")
            parameters["index"] = INDEX_PREFIX
        if query.status is not None:
            clauses.append("Status eq @status")
            parameters["status"] = query.status.value
    if query.direction:
        clauses.append("Direction eq @direction")
        parameters["direction"] = query.direction
    if query.error_code:
        clauses.append("ErrorCode eq @code")
        parameters["code"] = query.error_code
    if query.since:
        clauses.append("RowKey ge @since")
        parameters["since"] = row_key_bound(query.since)
    if query.until:
        clauses.append("RowKey lt @until")
        parameters["until"] = row_key_bound(query.until)
    return " and ".join(clauses), parameters


# Entity mapping -----------------------------------------------------------------------------------


def transaction_entity(transaction: Transaction) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": transaction.mailbox_id,
        "RowKey": transaction.id,
        "Direction": transaction.direction,
        "Operation": transaction.operation,
        "Status": transaction.status.value,
        "EventId": transaction.event_id or "",
        "AppointmentGuid": transaction.appointment_guid or "",
        "Reason": transaction.reason or "",
        "ErrorCode": transaction.error_code or "",
        "Message": (transaction.message or "")[:4000],
        "Attempts": transaction.attempts,
        "Redeliveries": transaction.redeliveries,
        "CreatedAt": transaction.created_at,
        "UpdatedAt": transaction.updated_at or transaction.created_at,
        "NextAttemptAt": transaction.next_attempt_at or "",
        "Subject": (transaction.subject or "")[:MAX_SHOWN_CHARS],
        "Start": transaction.start or "",
        "Person": (transaction.person or "")[:MAX_SHOWN_CHARS],
        "Upn": (transaction.upn or "")[:MAX_SHOWN_CHARS],
    }
    payload = json.dumps(transaction.payload, ensure_ascii=False)
    chunks = [payload[i : i + PAYLOAD_CHUNK] for i in range(0, len(payload), PAYLOAD_CHUNK)] or ["{}"]
    if len(chunks) > MAX_PAYLOAD_CHUNKS:
        raise ValueError(f"transaction payload too large ({len(payload)} characters)")
    entity["Payload"] = chunks[0]
    for number, chunk in enumerate(chunks[1:], start=1):
        entity[f"Payload{number}"] = chunk
    return entity


def _index_entity(transaction: Transaction) -> dict[str, Any]:
    entity = transaction_entity(transaction)
    entity["PartitionKey"] = FAILED_PARTITION
    entity["RowKey"] = public_id(transaction.mailbox_id, transaction.id)
    entity["Mailbox"] = transaction.mailbox_id
    entity["TxRowKey"] = transaction.id
    return entity


def transaction_from_entity(entity: dict[str, Any]) -> Transaction:
    payload = entity.get("Payload") or "{}"
    number = 1
    while f"Payload{number}" in entity:
        payload += entity[f"Payload{number}"]
        number += 1
    return Transaction(
        id=entity.get("TxRowKey") or entity["RowKey"],
        mailbox_id=entity.get("Mailbox") or entity["PartitionKey"],
        direction=entity.get("Direction", ""),
        operation=entity.get("Operation", ""),
        status=Status(entity.get("Status", "pending")),
        event_id=entity.get("EventId") or None,
        appointment_guid=entity.get("AppointmentGuid") or None,
        reason=entity.get("Reason") or None,
        error_code=entity.get("ErrorCode") or None,
        message=entity.get("Message") or None,
        attempts=int(entity.get("Attempts", 1)),
        redeliveries=int(entity.get("Redeliveries") or 0),  # rows written before it counted none
        payload=json.loads(payload),
        created_at=entity.get("CreatedAt", ""),
        updated_at=entity.get("UpdatedAt") or None,
        next_attempt_at=entity.get("NextAttemptAt") or None,
        subject=entity.get("Subject") or None,
        start=entity.get("Start") or None,
        person=entity.get("Person") or None,
        upn=entity.get("Upn") or None,
    )
