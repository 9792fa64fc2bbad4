"""The adapters the use cases need, built lazily once per process from the settings.

Each adapter is built on first use, so the webhook never pays for Graph or Dime.Scheduler
clients, importing `function_app` stays cheap, and a missing setting surfaces as one clear
SettingsError. Tests hand in their own adapters through the constructor.
"""

from __future__ import annotations

from collections.abc import Callable
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


def utc_now() -> datetime:
    return datetime.now(UTC)


class Services:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now, **adapters: Any) -> None:
        self.settings = settings
        self.clock = clock
        self.__dict__.update(adapters)  # overrides the cached properties below (tests)

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


@cache
def services() -> Services:
    """The process-wide services (the Functions host reuses the process across invocations)."""
    return Services(load_settings())
