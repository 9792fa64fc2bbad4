"""The lowest layer of the storage adapters: conditional writes, batch deletes and the two small
protocols the stores are built from.

Why a module of its own: `tables.StateStore` composes the transactions and history stores, and those
stores need the same etag-conditional helpers. Keeping the helpers here (importing nothing of ours)
lets every store import downwards only, so storage has no import cycle (tests/unit/test_imports.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from azure.data.tables import TableClient

T = TypeVar("T")

BATCH_LIMIT = 100  # operations per table transaction (one partition each)


class ConcurrentUpdate(Exception):
    """Someone else changed the row first (412/409): re-read and decide again."""


class TableSource(Protocol):
    """Anything that hands out table clients by name (`tables.StateStore`)."""

    def table(self, name: str) -> TableClient: ...


class HasStore(Protocol):
    """Anything holding a `TableSource` as `store` (`shared.services.Services`): typed structurally so
    that adapters never import the service container, which imports them."""

    @property
    def store(self) -> TableSource: ...


def conditional(entity_etag: str | None) -> dict[str, Any]:
    """Keyword arguments making a write succeed only while the row still has `entity_etag`."""
    from azure.core import MatchConditions

    return {"etag": entity_etag, "match_condition": MatchConditions.IfNotModified}


async def delete_rows(
    entities: list[Any],
    submit: Callable[[list[Any]], Awaitable[Any]],
    delete: Callable[[Any], Awaitable[Any]],
    *,
    whole_partitions: bool = False,
) -> tuple[int, int]:
    """Delete rows as read, each etag-conditional: one table transaction per partition and 100 rows
    (`submit(operations)`); a batch that fails because a row changed or went meanwhile (a tombstone
    written again) is done row by row (`delete(row)`), skipping those. `whole_partitions`: the rows
    of a partition go together or not at all (an appointment revived meanwhile keeps every row).
    (rows deleted, requests).

    The rule exists once for both transports: the aio stores pass the aio client's calls, and the
    sync `delete_unchanged` passes plain calls wrapped as coroutines that never wait (`completed`)."""
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import TableTransactionError

    by_partition: dict[str, list[Any]] = {}
    for entity in entities:
        by_partition.setdefault(entity["PartitionKey"], []).append(entity)
    deleted = requests = 0
    for rows in by_partition.values():
        for start in range(0, len(rows), BATCH_LIMIT):
            chunk = rows[start : start + BATCH_LIMIT]
            requests += 1
            try:
                await submit([("delete", row, conditional(row.metadata["etag"])) for row in chunk])
                deleted += len(chunk)
                continue
            except TableTransactionError as error:
                if error.status_code not in (404, 412):
                    raise
            if whole_partitions:
                continue
            for row in chunk:
                requests += 1
                try:
                    await delete(row)
                    deleted += 1
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
    return deleted, requests


def delete_unchanged(table: TableClient, entities: list[Any], *, whole_partitions: bool = False) -> tuple[int, int]:
    """`delete_rows` through a sync TableClient. (rows deleted, requests)."""

    async def submit(operations: list[Any]) -> None:
        table.submit_transaction(operations)

    async def delete(row: Any) -> None:
        table.delete_entity(row["PartitionKey"], row["RowKey"], **conditional(row.metadata["etag"]))

    return completed(delete_rows(entities, submit, delete, whole_partitions=whole_partitions))


def completed(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (its awaits are plain calls), run without an
    event loop: a sync caller of a rule written once for both transports."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a coroutine run as a plain call waited for something")
