"""The rules the sync and the asynchronous storage adapters share, written once (table_rows.delete_rows,
provisioning.AsyncProvisioner): both transports send the same requests and get the same answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableTransactionError

from shared.adapters.storage.aio_queues import AsyncQueueSender
from shared.adapters.storage.aio_tables import AsyncTables, Provisioned, delete_unchanged_async
from shared.adapters.storage.table_rows import completed, delete_unchanged


class Row(dict):
    def __init__(self, partition: str, row: str, etag: str) -> None:
        super().__init__(PartitionKey=partition, RowKey=row)
        self.metadata = {"etag": etag}


def refused(status: int) -> TableTransactionError:
    error = TableTransactionError(message="refused")
    error.status_code = status
    return error


class Table:
    """A table client that refuses every transaction of partition "p" (a row changed meanwhile) and
    the row delete of "p/2" (that row changed): what each transport sent is recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def _transaction(self, operations: list[Any]) -> None:
        self.sent.append(("batch", tuple((op, row["RowKey"], kw["etag"]) for op, row, kw in operations)))
        if operations[0][1]["PartitionKey"] == "p":
            raise refused(412)

    def _delete(self, partition: str, row: str, **kwargs: Any) -> None:
        self.sent.append(("row", partition, row, kwargs["etag"]))
        if (partition, row) == ("p", "2"):
            raise ResourceModifiedError("changed")

    def submit_transaction(self, operations: list[Any]) -> None:
        self._transaction(operations)

    def delete_entity(self, partition: str, row: str, **kwargs: Any) -> None:
        self._delete(partition, row, **kwargs)


class AioTables:
    """`AsyncTables`' two calls `delete_unchanged_async` uses, over the same table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def submit(self, name: str, operations: list[Any]) -> None:
        self.table._transaction(operations)

    async def call(self, name: str, method: str, *args: Any, **kwargs: Any) -> None:
        assert method == "delete_entity"
        self.table._delete(*args, **kwargs)


ROWS = [Row("p", "1", "e1"), Row("p", "2", "e2"), Row("q", "1", "e3")]


@pytest.mark.parametrize("whole_partitions", [False, True])
def test_both_transports_delete_alike(whole_partitions: bool) -> None:
    sync, aio = Table(), Table()
    answer_sync = delete_unchanged(sync, list(ROWS), whole_partitions=whole_partitions)
    answer_aio = asyncio.run(delete_unchanged_async(AioTables(aio), "t", list(ROWS), whole_partitions=whole_partitions))  # type: ignore[arg-type]
    assert sync.sent == aio.sent
    assert answer_sync == answer_aio
    if whole_partitions:  # the refused partition keeps every row
        assert answer_sync == (1, 2)
    else:  # p/1 row by row, p/2 changed (skipped), q in one transaction
        assert answer_sync == (2, 4)
        assert ("row", "p", "1", "e1") in sync.sent


def test_an_unexpected_refusal_is_raised_by_both() -> None:
    class Broken(Table):
        def _transaction(self, operations: list[Any]) -> None:
            raise refused(400)

    with pytest.raises(TableTransactionError):
        delete_unchanged(Broken(), list(ROWS))
    with pytest.raises(TableTransactionError):
        asyncio.run(delete_unchanged_async(AioTables(Broken()), "t", list(ROWS)))  # type: ignore[arg-type]


def test_completed_refuses_a_coroutine_that_waits() -> None:
    async def plain() -> int:
        return 7

    async def waits() -> None:
        await asyncio.sleep(0)

    assert completed(plain()) == 7
    with pytest.raises(RuntimeError):
        completed(waits())


class Service:
    """A table and queue service recording what it was asked to create."""

    def __init__(self) -> None:
        self.created: list[str] = []

    async def create_table_if_not_exists(self, name: str) -> None:
        self.created.append(name)

    async def create_queue(self, name: str) -> None:
        self.created.append(name)

    def get_table_client(self, name: str) -> Any:
        return None


@pytest.mark.parametrize("adapter", [AsyncTables, AsyncQueueSender])
def test_the_first_use_provisions_everything_once_across_loops(adapter: Any) -> None:
    service, provisioned = Service(), Provisioned()

    async def use(name: str) -> None:
        one = adapter(service, provisioned)
        await asyncio.gather(*(one.ensure(name) for _ in range(3)))

    asyncio.run(use("extra"))
    first = list(service.created)
    asyncio.run(use("extra"))  # another loop, other adapters: nothing created again
    assert service.created == first
    assert "extra" in first and len(first) == len(set(first)) > 1
