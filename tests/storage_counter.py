"""Counting the storage round trips a process makes (benchmarks): an instrumented transport.

The table and queue SDKs send every request through azure-core's ``RequestsTransport`` (the sync
clients) or ``AioHttpTransport`` (the aio clients of shared/adapters/storage/aio_*.py); counting
there sees every round trip (retries included), whichever adapter made it, without touching the
app. Counts are per service (table / queue), told apart by the endpoint's port or host.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, ClassVar


class StorageCounter:
    """``StorageCounter.install()`` once per process; read ``total`` or ``by_service``."""

    _installed: ClassVar[StorageCounter | None] = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()  # "METHOD table" (tables only)

    @classmethod
    def install(cls) -> StorageCounter:
        if cls._installed is not None:
            return cls._installed
        from azure.core.pipeline.transport import AioHttpTransport, RequestsTransport

        counter = cls()
        original = RequestsTransport.send
        original_async = AioHttpTransport.send

        def send(transport: Any, request: Any, **kwargs: Any) -> Any:
            counter.add(_service_of(request.url), request)
            return original(transport, request, **kwargs)

        async def send_async(transport: Any, request: Any, **kwargs: Any) -> Any:
            counter.add(_service_of(request.url), request)
            return await original_async(transport, request, **kwargs)

        RequestsTransport.send = send  # type: ignore[method-assign]
        AioHttpTransport.send = send_async  # type: ignore[method-assign]
        cls._installed = counter
        return counter

    def add(self, service: str, request: Any = None) -> None:
        with self._lock:
            self._counts[service] += 1
            if service == "table" and request is not None:
                self._requests[f"{request.method} {_table_of(request.url)}"] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def by_service(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def table_requests(self) -> dict[str, int]:
        """Table round trips by "METHOD table" ("DELETE syncstate", "POST $batch", ...)."""
        with self._lock:
            return dict(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._requests.clear()


def _service_of(url: str) -> str:
    """Queue requests address a queue's messages (``/<queue>/messages``) or its metadata
    (``?comp=metadata``); everything else here is a table request (``/Tables``, ``/$batch``,
    ``/<table>`` and its entities). The same test serves Azurite and Azure."""
    path, _, query = url.partition("?")
    if "/messages" in path or "comp=metadata" in query or ".queue." in path:
        return "queue"
    return "table"


def _table_of(url: str) -> str:
    """The table a request addresses (`/<account>/<table>(...)` on Azurite, `/<table>(...)` on
    Azure), or `$batch` / `Tables`."""
    path = url.partition("?")[0].split("://", 1)[-1].partition("/")[2]
    segments = [s for s in path.split("/") if s]
    last = segments[-1] if segments else ""
    return last.partition("(")[0]
