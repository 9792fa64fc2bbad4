"""The history table: outcome counts per hour, so the Overview's charts cost one range query.

Layout (table `history`, one partition):

* PartitionKey = "days", RowKey = "<YYYYMMDD>-<shard>", `Day` = "YYYYMMDD", and one integer column per
  (direction, status, hour) that was counted (shared/core/history.py names them).

A shard is one writer: a random id drawn by a thread of a process the first time it counts something
on a day. The thread keeps its own totals of that day in memory and writes them as absolute values
with a blind merge upsert (only that day's changed columns). Only that thread ever writes that row, so
several instances (and several threads of one) never overwrite each other's counts, and the hot path
pays no read, no etag and no retry: one upsert per `add` / `save`, one per batch for `add_many`
(whatever the batch's size). A counter write that fails is logged and carried by the thread's next
write (the totals are absolute); the transaction itself is never failed for it.

Reading sums every shard of the last 14 days: rows = days × writers of each day (a few per day; one
query, one request per 1,000 rows). History starts empty: transactions written before this table
existed are not counted.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.core.history import day_range, summarize, tally
from shared.core.transactions import Transaction
from shared.names import HISTORY_TABLE

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from shared.adapters.storage.tables import StateStore

log = logging.getLogger(__name__)

PARTITION = "days"
DAYS_KEPT_IN_MEMORY = 2  # a thread forgets older days; a late outcome for one starts a fresh row

_local = threading.local()
_generation = [0]  # bumped by forget_writers(): every thread starts new rows


class _Shard:
    """One thread's totals for one table: {day: (row key, counts)}."""

    def __init__(self) -> None:
        self.days: dict[str, tuple[str, Counter[str]]] = {}

    def bump(self, day: str, counts: Counter[str]) -> dict[str, Any]:
        """The merge entity carrying this writer's new totals of the columns `counts` touches."""
        entry = self.days.get(day)
        if entry is None:
            entry = self.days[day] = (f"{day}-{uuid.uuid4().hex[:16]}", Counter())
            for old in sorted(self.days)[:-DAYS_KEPT_IN_MEMORY]:
                del self.days[old]  # (possibly `day` itself when late: its row is used once, then left)
        row_key, totals = entry
        totals.update(counts)
        return {"PartitionKey": PARTITION, "RowKey": row_key, "Day": day, **{name: totals[name] for name in counts}}


def _shard(table_url: str) -> _Shard:
    if getattr(_local, "generation", None) != _generation[0]:
        _local.shards, _local.generation = {}, _generation[0]
    shards: dict[str, _Shard] = _local.shards
    return shards.setdefault(table_url, _Shard())


def forget_writers() -> None:
    """Every thread's next count starts a new row from zero: for an account emptied under a running
    process (tests clean their tables between cases), whose old totals must not be carried on."""
    _generation[0] += 1


class HistoryStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def record(self, transactions: Iterable[Transaction]) -> None:
        """Count the succeeded/failed outcomes among `transactions`: at most one round trip (two
        when a batch spans midnight, in one table transaction), none when nothing is counted."""
        bumps = tally(transactions, datetime.now(UTC))
        if not bumps:
            return
        shard = _shard(_identity(self._table))
        entities = [shard.bump(day, counts) for day, counts in sorted(bumps.items())]
        from azure.data.tables import UpdateMode

        try:
            if len(entities) == 1:
                self._table.upsert_entity(entities[0], mode=UpdateMode.MERGE)
            else:
                self._table.submit_transaction([("upsert", e, {"mode": UpdateMode.MERGE}) for e in entities])
        except Exception as error:  # the picture must never fail a write; the next write carries the totals
            log.warning("history counts not written (carried by this writer's next write): %s", str(error)[:300])

    def summary(self, now: datetime) -> dict[str, Any]:
        """The last 24 hours and 14 days, summed over every writer: one range query."""
        low, high = day_range(now)
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": PARTITION, "low": low, "high": high},
        )
        return summarize(rows, now)


# The same counts from the event loop (shared/adapters/storage/aio_stores.py). Coroutines of one loop
# share a thread, so a thread-local shard would be written by several concurrent writes whose
# answers may arrive out of order (an older total last). A shard is instead lent to one write at a
# time: concurrent writes take distinct shards (rows), a finished write gives its shard back.
_lent: dict[str, list[_Shard]] = {}
_lent_generation = [0]


async def record_async(tables: Any, transactions: Iterable[Transaction]) -> None:
    """`HistoryStore.record` through an `AsyncTables`: at most one round trip, never raises."""
    bumps = tally(transactions, datetime.now(UTC))
    if not bumps:
        return
    from azure.data.tables import UpdateMode

    if _lent_generation[0] != _generation[0]:
        _lent.clear()
        _lent_generation[0] = _generation[0]
    free = _lent.setdefault(_identity(tables.client(HISTORY_TABLE)), [])
    shard = free.pop() if free else _Shard()
    try:
        entities = [shard.bump(day, counts) for day, counts in sorted(bumps.items())]
        if len(entities) == 1:
            await tables.call(HISTORY_TABLE, "upsert_entity", entities[0], mode=UpdateMode.MERGE)
        else:
            await tables.submit(HISTORY_TABLE, [("upsert", e, {"mode": UpdateMode.MERGE}) for e in entities])
    except Exception as error:  # the picture must never fail a write; the next write carries the totals
        log.warning("history counts not written (carried by this writer's next write): %s", str(error)[:300])
    finally:
        free.append(shard)


def _identity(table: Any) -> str:
    """Which table (account and name) a writer's totals belong to: two Services on two accounts in
    one process (tests) must not share totals."""
    return f"{getattr(table, 'url', '')}|{getattr(table, 'table_name', '')}"


def history_store(store: StateStore) -> HistoryStore:
    return HistoryStore(store.table(HISTORY_TABLE))
