"""Self-provisioning: the app creates its tables and queues on first use, once per process.

A new storage account, a fresh Azurite or a restarted in-memory Azurite holds none of them, and
the app must still work without a set-up script. The first use of any table (or queue) creates
every name of `shared.names.ALL_TABLES` (or `ALL_QUEUES`) at once, concurrently and idempotently;
after that, using a table or queue costs nothing extra (never a create on the webhook's hot path
after the first request). `forget()` makes the next use provision again, for when storage says a
table or queue is missing after all (the account was emptied under a running process).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def still_missing(names: Iterable[str], name: str, done: set[str]) -> list[str]:
    """What a first use of `name` creates: every name of the app (and `name`) not created yet."""
    return [n for n in dict.fromkeys((*names, name)) if n not in done]


class Provisioner:
    """Runs `create(name)` for every name once, before the first use of any of them."""

    def __init__(self, names: Iterable[str], create: Callable[[str], None]) -> None:
        self._names = tuple(names)
        self._create = create
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, name: str) -> None:
        if name in self._done:  # the hot path: a set lookup, no I/O
            return
        with self._lock:
            if name in self._done:
                return
            missing = still_missing(self._names, name, self._done)
            with ThreadPoolExecutor(max_workers=min(8, len(missing)), thread_name_prefix="provision") as pool:
                list(pool.map(self._create, missing))  # raises the first failure: nothing marked done
            self._done.update(missing)

    def forget(self) -> None:
        with self._lock:
            self._done.clear()

    def again(self, name: str) -> None:
        """Storage said a table or queue is missing after all: provision everything once more."""
        self.forget()
        self.ensure(name)


class Provisioned:
    """The names already created in this process: shared by every loop's adapters (a second
    `asyncio.run` does not create the tables again); cleared when storage says one is missing."""

    def __init__(self) -> None:
        self.names: set[str] = set()


class AsyncProvisioner:
    """`Provisioner` on the event loop (the aio tables and queues): `create(name)` for every name
    once, concurrently, before the first use of any; what was created is recorded in a `Provisioned`
    that every loop's adapters share, the lock is this loop's (an asyncio lock belongs to one loop)."""

    def __init__(
        self, names: Iterable[str], create: Callable[[str], Awaitable[None]], done: Provisioned | None = None
    ) -> None:
        self._names = tuple(names)
        self._create = create
        self.done = done or Provisioned()
        self._lock = asyncio.Lock()

    async def ensure(self, name: str) -> None:
        if name in self.done.names:  # the hot path: a set lookup, no I/O
            return
        async with self._lock:
            if name in self.done.names:
                return
            missing = still_missing(self._names, name, self.done.names)
            await asyncio.gather(*(self._create(n) for n in missing))  # raises: nothing marked done
            self.done.names.update(missing)

    async def again(self, name: str) -> None:
        """Storage said a table or queue is missing after all: provision everything once more."""
        self.done.names.clear()
        await self.ensure(name)


def is_missing_container(error: BaseException) -> bool:
    """Storage says the table or queue itself does not exist (not: the entity or message)."""
    code = getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # the tables SDK gives an enum (str() would be its name)
    if code is None:
        # The tables SDK leaves the code unset for an insert (`create_entity`, sync and aio alike)
        # and only quotes the answer's JSON in the message: {"odata.error":{"code":"TableNotFound",...
        text = str(error)
        return '"code":"TableNotFound"' in text or '"code":"QueueNotFound"' in text
    return str(code) in ("TableNotFound", "QueueNotFound")


class HealingTable:
    """A TableClient that survives its table vanishing under a running process (a restarted
    in-memory Azurite, an emptied account): a TableNotFound provisions every table again and
    repeats the call once. Plain queries heal too (the error surfaces on first iteration);
    `by_page` paging is passed through as is."""

    def __init__(self, client: Any, heal: Callable[[], None]) -> None:
        self._client = client
        self._heal = heal

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            from azure.core.exceptions import ResourceNotFoundError
            from azure.core.paging import ItemPaged

            try:
                result = attribute(*args, **kwargs)
            except ResourceNotFoundError as error:
                if not is_missing_container(error):
                    raise
                self._heal()
                return attribute(*args, **kwargs)
            if isinstance(result, ItemPaged):
                return _HealingPages(result, lambda: attribute(*args, **kwargs), self._heal)
            return result

        return call

    def submit_transaction(self, operations: Any, **kwargs: Any) -> Any:
        """A table transaction: the plain ones (create, upsert) as one hand-written request
        (`table_batch`: a tenth of the SDK's CPU); anything else, or any answer but a clean
        success, through the SDK's `submit_transaction`, which raises its exact error. A missing
        table heals here too (a transaction reports it as a TableTransactionError, which is not a
        ResourceNotFoundError). The fast path returns no per-operation metadata (no caller reads it)."""
        from azure.core.exceptions import HttpResponseError

        operations = list(operations)
        try:
            return self._transaction(operations, kwargs)
        except HttpResponseError as error:
            if not is_missing_container(error):
                raise
            self._heal()
            return self._transaction(operations, kwargs)

    def _transaction(self, operations: list[Any], kwargs: dict[str, Any]) -> Any:
        from shared.adapters.storage.table_batch import send_batch

        if not kwargs:
            etags = send_batch(self._client, operations)
            if etags is not None:  # what the SDK answers, as far as callers read it: each row's etag
                return [{"etag": etag} for etag in etags]
        return self._client.submit_transaction(operations, **kwargs)


class _HealingPages:
    def __init__(self, pages: Any, again: Callable[[], Any], heal: Callable[[], None]) -> None:
        self._pages = pages
        self._again = again
        self._heal = heal

    def by_page(self, *args: Any, **kwargs: Any) -> Any:
        return self._pages.by_page(*args, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        from azure.core.exceptions import ResourceNotFoundError

        iterator = iter(self._pages)
        try:
            first = next(iterator)
        except StopIteration:
            return
        except ResourceNotFoundError as error:
            if not is_missing_container(error):
                raise
            self._heal()
            yield from self._again()
            return
        yield first
        yield from iterator
