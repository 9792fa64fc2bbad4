"""The adapters the use cases need, built lazily once per process from the settings.

Each adapter is built on first use, so the webhook never pays for Graph or Dime.Scheduler
clients, importing `function_app` stays cheap, and a missing setting surfaces as one clear
SettingsError. Tests hand in their own adapters through the constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from shared.adapters.dime import DimeGateway
    from shared.adapters.graph import GraphGateway
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
        # replaces the adapter (and the property never builds the real one).
        self.__dict__.update(adapters)

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


# The adapters a test may hand in: every lazily built one (a cached_property of Services).
ADAPTERS = frozenset(name for name, value in vars(Services).items() if isinstance(value, cached_property))


@cache
def services() -> Services:
    """The process-wide services (the Functions host reuses the process across invocations)."""
    return Services(load_settings())
