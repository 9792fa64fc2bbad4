"""Table Storage on the event loop: `azure.data.tables.aio`, no thread per call.

Why: every table call of the hot path used to go through `asyncio.to_thread` (a 6-thread pool on
2 cores), and under realistic latencies the wait for a thread reached p99 150-290 ms (issue 20).
`scripts/bench_async_tables.py` measured the aio client against that.

This module is the transport only: which table, provisioning on first use, healing when a table
vanished under a running process, and table transactions (the hand-written `$batch` of
`table_batch`, the SDK for everything else). The entity <-> model mapping is the sync stores'
(`tables.py`, `syncstate_store.py`, `event_links_store.py`, `transactions_store.py`): one mapping,
two transports. The stores themselves are in `aio_stores.py`.

An aio client belongs to one event loop (its aiohttp session does): `Services` builds one
`AsyncTables` per running loop and closes it when the loop ends.
"""

from __future__ import annotations

from typing import Any

from shared.adapters.storage.provisioning import AsyncProvisioner, Provisioned, is_missing_container
from shared.names import ALL_TABLES

__all__ = ["AsyncTables", "Provisioned", "delete_unchanged_async"]


class AsyncTables:
    def __init__(self, service: Any, provisioned: Provisioned | None = None) -> None:
        self._service = service
        self._clients: dict[str, Any] = {}
        # The first use of any table creates every table of the app (concurrently, idempotently),
        # as the sync store's Provisioner does; after that, a set look-up.
        self._provisioner = AsyncProvisioner(ALL_TABLES, service.create_table_if_not_exists, provisioned)

    async def ensure(self, name: str) -> None:
        await self._provisioner.ensure(name)

    async def _heal(self, name: str) -> None:
        await self._provisioner.again(name)

    def client(self, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self._service.get_table_client(name)
        return self._clients[name]

    async def call(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call of the aio TableClient (`get_entity`, `create_entity`, ...); a missing table
        is provisioned again and the call repeated once."""
        from azure.core.exceptions import ResourceNotFoundError

        await self.ensure(name)
        try:
            return await getattr(self.client(name), method)(*args, **kwargs)
        except ResourceNotFoundError as error:
            if not is_missing_container(error):
                raise
        await self._heal(name)
        return await getattr(self.client(name), method)(*args, **kwargs)

    async def get(self, name: str, partition: str, row: str, **kwargs: Any) -> Any | None:
        """The entity, or None when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return await self.call(name, "get_entity", partition, row, **kwargs)
        except ResourceNotFoundError:
            return None

    async def query(
        self,
        name: str,
        query: str,
        parameters: dict[str, Any] | None = None,
        select: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Any]:
        """Every entity matching the filter (all pages), or the first `limit` of them (pages of
        that size: what a bounded read costs does not depend on how many rows match)."""
        from azure.core.exceptions import ResourceNotFoundError

        await self.ensure(name)
        try:
            return await self._query(name, query, parameters, select, limit)
        except ResourceNotFoundError as error:
            if not is_missing_container(error):
                raise
        await self._heal(name)
        return await self._query(name, query, parameters, select, limit)

    async def first(
        self, name: str, query: str, parameters: dict[str, Any], limit: int, select: list[str] | None = None
    ) -> list[Any]:
        """At most `limit` entities matching the filter, asking for no more than that (`$top`,
        at most 1,000 a request): a page of a walk, not the table's default 1,000 rows of which
        the caller keeps a few."""
        from azure.core.exceptions import ResourceNotFoundError

        await self.ensure(name)
        try:
            return await self._first(name, query, parameters, limit, select)
        except ResourceNotFoundError as error:
            if not is_missing_container(error):
                raise
        await self._heal(name)
        return await self._first(name, query, parameters, limit, select)

    async def _first(
        self, name: str, query: str, parameters: dict[str, Any], limit: int, select: list[str] | None
    ) -> list[Any]:
        kwargs: dict[str, Any] = {"select": select} if select else {}
        pages = self.client(name).query_entities(
            query, parameters=parameters, results_per_page=min(limit, 1000), **kwargs
        )
        found: list[Any] = []
        async for entity in pages:
            found.append(entity)  # the pager asks for the next page only when this one is used up
            if len(found) >= limit:
                break
        return found

    async def _query(self, name: str, query: str, parameters: Any, select: Any, limit: int | None) -> list[Any]:
        kwargs: dict[str, Any] = {"parameters": parameters} if parameters else {}
        if select:
            kwargs["select"] = select
        if limit is not None:
            kwargs["results_per_page"] = min(limit, 1000)
        out: list[Any] = []
        async for entity in self.client(name).query_entities(query, **kwargs):
            out.append(entity)
            if limit is not None and len(out) >= limit:
                break
        return out

    async def submit(self, name: str, operations: list[Any], **kwargs: Any) -> list[Any]:
        """A table transaction: plain creates and upserts as one hand-written request
        (`table_batch`), anything else, or any answer but a clean success, through the SDK's
        `submit_transaction`, which raises its exact error (a failed transaction applied nothing).
        A missing table heals here too (reported as a TableTransactionError). Returns the
        metadata of each operation ({"etag": ...} at least; None for a delete's etag)."""
        from azure.core.exceptions import HttpResponseError

        await self.ensure(name)
        try:
            return await self._submit(name, operations, kwargs)
        except HttpResponseError as error:
            if not is_missing_container(error):
                raise
        await self._heal(name)
        return await self._submit(name, operations, kwargs)

    async def _submit(self, name: str, operations: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        from shared.adapters.storage.table_batch import send_batch_async

        client = self.client(name)
        if not kwargs:
            etags = await send_batch_async(client, operations)
            if etags is not None:
                return [{"etag": etag} for etag in etags]
        return list(await client.submit_transaction(operations, **kwargs))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._service.close()


async def delete_unchanged_async(
    tables: AsyncTables, name: str, entities: list[Any], *, whole_partitions: bool = False
) -> tuple[int, int]:
    """`table_rows.delete_rows` through the aio client (the sync `delete_unchanged`'s rule, on the
    event loop). (rows deleted, requests)."""
    from shared.adapters.storage.table_rows import conditional, delete_rows

    async def submit(operations: list[Any]) -> None:
        await tables.submit(name, operations)

    async def delete(row: Any) -> None:
        etag = conditional(row.metadata["etag"])
        await tables.call(name, "delete_entity", row["PartitionKey"], row["RowKey"], **etag)

    return await delete_rows(entities, submit, delete, whole_partitions=whole_partitions)
