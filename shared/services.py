"""The adapters the use cases need, built lazily once per process from the settings.

Each adapter is built on first use, so the webhook never pays for Graph or Dime.Scheduler
clients, importing `function_app` stays cheap, and a missing setting surfaces as one clear
SettingsError. Tests hand in their own adapters through the constructor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from shared.adapters.dime import DimeGateway
    from shared.adapters.dime_async import AsyncDimeGateway
    from shared.adapters.graph import GraphGateway
    from shared.adapters.storage.aio_queues import AsyncQueueSender
    from shared.adapters.storage.aio_stores import AsyncStateStore
    from shared.adapters.storage.queues import QueueSender
    from shared.adapters.storage.subscription_rows import SubscriptionOwners
    from shared.adapters.storage.tables import StateStore
    from shared.core.dime_to_outlook.rules import RuleSet


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ProcessCaches:
    """Every cache a use case keeps for the life of a Services (the process-wide one in Azure, a
    fresh one per test), named here so that a reader finds them all in one place and a test starts
    from empty ones. Each is a hint of what was read, never a source of truth: its owner says how
    long it lives and what drops it."""

    # shared/usecases/dime_to_outlook/rules_in_force.py: (rule set, time.monotonic() of the read),
    # kept RULES_TTL_SECONDS; a save drops it (`forget_rules`).
    rules: tuple[RuleSet, float] | None = None
    # shared/usecases/dime_to_outlook/place_appointment.py `_Directory`: Dime.Scheduler's resources and
    # Graph's e-mail → mailbox answers (typed Any: a use case's class, which this module may not import).
    dime_directory: Any = None


class Services:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now, **adapters: Any) -> None:
        self.settings = settings
        self.clock = clock
        self.caches = ProcessCaches()
        if unknown := set(adapters) - ADAPTERS:
            raise TypeError(f"Services: no such adapter(s) {sorted(unknown)}; known: {sorted(ADAPTERS)}")
        # A cached_property stores its value in the instance's __dict__: setting it first is what
        # replaces the adapter (and the property never builds the real one); the asynchronous
        # adapters below look there first too.
        self.__dict__.update(adapters)
        from shared.adapters.storage.aio_tables import Provisioned

        # Tables and queues created by any loop's adapters: a later loop does not create them again.
        self.provisioned_tables, self.provisioned_queues = Provisioned(), Provisioned()
        self._loop_adapters: dict[int, LoopAdapters] = {}

    @cached_property
    def store(self) -> StateStore:
        from shared.adapters.storage.clients import table_service
        from shared.adapters.storage.tables import StateStore

        return StateStore(table_service(self.settings.storage))

    @cached_property
    def queues(self) -> QueueSender:
        from shared.adapters.storage.clients import queue_service
        from shared.adapters.storage.queues import QueueSender

        return QueueSender(queue_service(self.settings.storage))

    @cached_property
    def subscription_owners(self) -> SubscriptionOwners:
        """Which mailbox holds a subscription id (the webhook's check), with a short cache."""
        from shared.adapters.storage.subscription_rows import SubscriptionOwners

        return SubscriptionOwners(self.store)

    @cached_property
    def graph(self) -> GraphGateway:
        from shared.adapters.graph import GraphGateway, graph_credential
        from shared.core.graph_cloud import graph_cloud

        s = self.settings
        authority = graph_cloud(s.graph_base_url).authority
        credential = graph_credential(s.graph_tenant_id, s.graph_client_id, s.graph_client_secret, authority=authority)
        return GraphGateway(s.graph_base_url, credential)

    @cached_property
    def dime(self) -> DimeGateway:
        from shared.adapters.dime import DimeGateway

        return DimeGateway(self.settings.dime_base_url, self.settings.dime_api_key)

    # Asynchronous adapters (no thread per call). An aio client belongs to the event loop it was
    # built on, so each running loop gets its own, built on first use and closed when the loop
    # ends (`LoopAdapters`); the Functions host runs one loop for the process' life. Tests may
    # hand them in (astore=..., aqueues=..., adime=...).

    @property
    def astore(self) -> AsyncStateStore:
        given = self.__dict__.get("astore")
        return given if given is not None else self.on_this_loop().store

    @property
    def aqueues(self) -> AsyncQueueSender:
        given = self.__dict__.get("aqueues")
        return given if given is not None else self.on_this_loop().queues

    @property
    def adime(self) -> AsyncDimeGateway:
        given = self.__dict__.get("adime")
        return given if given is not None else self.on_this_loop().dime

    def on_this_loop(self) -> LoopAdapters:
        """The running loop's adapters (built now if this loop has none); must run on a loop."""
        loop = asyncio.get_running_loop()
        adapters = self._loop_adapters.get(id(loop))
        if adapters is None or adapters.loop() is not loop:
            for key, old in list(self._loop_adapters.items()):  # loops that ended (their ids may be reused)
                if old.loop() is None or old.loop().is_closed():  # type: ignore[union-attr]
                    del self._loop_adapters[key]
            adapters = self._loop_adapters[id(loop)] = LoopAdapters(self, loop)
        return adapters


class LoopAdapters:
    """One event loop's asynchronous adapters, each built on first use.

    Closed when the loop ends: `asyncio.run` (and the Functions host's loop, at shutdown) closes the
    loop's asynchronous generators before closing the loop (`loop.shutdown_asyncgens`), so a
    generator suspended at its first `yield` from here on is that moment's hook; its `finally`
    closes the clients' sessions on their own loop. A loop that is closed without that step leaves
    them to the garbage collector."""

    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        import weakref

        self._services = services
        self.loop = weakref.ref(loop)
        self._credential: Any = None
        self._closer = _until_loop_ends(self)
        step = self._closer.__anext__()  # registers the generator with the running loop ...
        with contextlib.suppress(StopIteration):
            step.send(None)  # ... and runs it to its `yield` (nothing there awaits)

    def _storage_credential(self) -> Any:
        from shared.adapters.storage.clients import async_storage_credential

        storage = self._services.settings.storage
        if storage.connection_string is None and self._credential is None:
            self._credential = async_storage_credential(storage)
        return self._credential

    @cached_property
    def store(self) -> AsyncStateStore:
        from shared.adapters.storage.aio_stores import AsyncStateStore
        from shared.adapters.storage.aio_tables import AsyncTables
        from shared.adapters.storage.clients import async_table_service

        service = async_table_service(self._services.settings.storage, self._storage_credential())
        return AsyncStateStore(AsyncTables(service, self._services.provisioned_tables))

    @cached_property
    def queues(self) -> AsyncQueueSender:
        from shared.adapters.storage.aio_queues import AsyncQueueSender
        from shared.adapters.storage.clients import async_queue_service

        service = async_queue_service(self._services.settings.storage, self._storage_credential())
        return AsyncQueueSender(service, self._services.provisioned_queues)

    @cached_property
    def dime(self) -> AsyncDimeGateway:
        """Built like the sync gateway in use (its host, key, retries and timeout), so that a test's
        or a script's choice holds for both."""
        from shared.adapters.dime_async import AsyncDimeGateway

        options = getattr(self._services.dime, "options", None)
        if options is None:  # a test's stand-in for the sync gateway: the settings' host and key
            s = self._services.settings
            return AsyncDimeGateway(s.dime_base_url, s.dime_api_key)
        return AsyncDimeGateway.like(options)

    async def close(self) -> None:
        """Close whatever was built (each once; a failure to close one does not keep the others open)."""
        built = [self.__dict__.pop(name) for name in ("store", "queues", "dime") if name in self.__dict__]
        closers = [b.tables.close() if hasattr(b, "tables") else b.close() for b in built]
        if self._credential is not None:
            closers.append(self._credential.close())
            self._credential = None
        await asyncio.gather(*closers, return_exceptions=True)


async def _until_loop_ends(adapters: LoopAdapters) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await adapters.close()


# The adapters a test may hand in: every lazily built one (a cached_property of Services), and the
# asynchronous ones (built per event loop).
ASYNC_ADAPTERS = frozenset({"astore", "aqueues", "adime"})
ADAPTERS = (
    frozenset(name for name, value in vars(Services).items() if isinstance(value, cached_property)) | ASYNC_ADAPTERS
)


@cache
def services() -> Services:
    """The process-wide services (the Functions host reuses the process across invocations)."""
    return Services(load_settings())
