"""Shared fixtures: one real Azurite per test session, fresh fakes and clean state per test."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.core.outlook_to_dime.webhook import client_state_for
from shared.services import Services
from shared.settings import load_settings
from tests.azurite import Azurite, start_azurite

TENANT_ID = "7a1f3c5e-0000-4000-8000-00000000aaaa"
CLIENT_STATE_SECRET = "test-client-state-secret-0123456789"
DIME_API_KEY = "test-api-key"
DIME_PUBLICATIONS_KEY = "test-publications-key-0123456789abcdef"  # not the runner's host key
MANAGEMENT_KEY = "test-management-key-0123456789abcdef-0"  # opens /api/manage; not a host key either
MANAGE_HEADERS = {"x-functions-key": MANAGEMENT_KEY}  # what the console (and the tests) send


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite()
    yield instance
    instance.stop()


def settings_env(azurite: Azurite, graph_url: str, dime_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "GRAPH_TENANT_ID": TENANT_ID,
        "GRAPH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "GRAPH_BASE_URL": graph_url,
        "NOTIFICATION_URL": "https://example.invalid/api/notifications?code=k",
        "LIFECYCLE_NOTIFICATION_URL": "https://example.invalid/api/lifecycle?code=k",
        "CLIENT_STATE_SECRET": CLIENT_STATE_SECRET,
        "DIME_BASE_URL": dime_url,
        "DIME_API_KEY": DIME_API_KEY,
        "DIME_PUBLICATIONS_KEY": DIME_PUBLICATIONS_KEY,
        "MANAGEMENT_KEY": MANAGEMENT_KEY,
        "DIME_TIME_ZONE": "UTC",  # required; the tests of offset-less local times set their own
    }
    env.update(overrides)
    return env


@pytest.fixture
def graph() -> Iterator[Any]:
    from tests.fakes import FakeGraph

    with FakeGraph(tenant_id=TENANT_ID) as fake:
        yield fake


@pytest.fixture
def dime() -> Iterator[Any]:
    from tests.fakes import FakeDime

    with FakeDime(api_key=DIME_API_KEY) as fake:
        yield fake


def clean_storage(services: Services) -> None:
    """Each test starts from empty tables and queues (Azurite is shared by the session).

    Creates nothing: the app provisions its own tables and queues on first use (a fresh Azurite
    is proven to work in tests/e2e/test_empty_storage.py).
    """
    from shared.adapters.storage.history_store import forget_writers

    forget_writers()  # the history counters' in-memory totals belong to the rows deleted here
    table_service = services.store._service
    for table_item in table_service.list_tables():
        table = table_service.get_table_client(table_item.name)
        for entity in table.query_entities("", select=["PartitionKey", "RowKey"]):
            table.delete_entity(entity["PartitionKey"], entity["RowKey"])
    queue_service = services.queues._service
    for queue_item in queue_service.list_queues():
        queue_service.get_queue_client(queue_item.name).clear_messages()


def make_services(env: dict[str, str], *, retries: int = 0) -> Services:
    """Real adapters against Azurite and the fakes (Graph reached with a static test token)."""
    from shared.adapters.dime import DimeGateway
    from shared.adapters.graph import GraphGateway
    from tests.fakes.credential import StaticTokenCredential

    settings = load_settings(env)
    return Services(
        settings,
        graph=GraphGateway(settings.graph_base_url, StaticTokenCredential(), max_retries=retries),
        dime=DimeGateway(settings.dime_base_url, settings.dime_api_key, max_retries=retries, max_delay_seconds=1.0),
    )


@pytest.fixture
def services(azurite: Azurite, graph: Any, dime: Any, monkeypatch: pytest.MonkeyPatch) -> Services:
    """The app's services wired to Azurite and the fakes; function_app uses them too."""
    built = make_services(settings_env(azurite, graph.base_url, dime.base_url))
    clean_storage(built)
    import function_app

    monkeypatch.setattr(function_app, "services", lambda: built)
    return built


def subscription_id_of(mailbox_id: str) -> str:
    """The subscription id notification_item() sends for a mailbox (and track() records)."""
    return "sub-" + mailbox_id[:8]


def track(services: Services, user: dict[str, Any]) -> Any:
    """Onboard a fake-Graph user straight into the tables (tenant defaults), with the subscription
    row notification_item()'s items come from: the webhook accepts items only from subscriptions
    the app holds for that mailbox. Returns the Resource."""
    from dataclasses import replace

    from shared.adapters.storage.subscription_rows import SubscriptionRow, save_subscription
    from shared.core.resources import resource_from_user

    sub_id = subscription_id_of(user["id"])
    resource = replace(resource_from_user(user, services.settings.default_consent), subscription_id=sub_id)
    services.store.put_resource(resource)
    save_subscription(services.store, SubscriptionRow(sub_id, user["id"], "2026-11-29T00:00:00Z"))
    return resource


def notification_item(
    mailbox_id: str, event_id: str, change_type: str = "updated", change_key: str | None = "ck"
) -> dict:
    """A change notification as Graph sends it, with the right clientState."""
    resource = f"Users/{mailbox_id}/Events/{event_id}"
    data: dict[str, Any] = {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource, "id": event_id}
    if change_key is not None:
        data["@odata.etag"] = f'W/"{change_key}"'
    return {
        "subscriptionId": subscription_id_of(mailbox_id),
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
        "clientState": client_state_for(mailbox_id, CLIENT_STATE_SECRET),
        "changeType": change_type,
        "resource": resource,
        "tenantId": TENANT_ID,
        "resourceData": data,
    }


def drain_queue(services: Services, queue_name: str) -> list[dict]:
    """Receive and delete every message, decoded the way the Functions host decodes them."""
    client = services.queues.client(queue_name)
    messages = []
    for message in client.receive_messages(messages_per_page=32, visibility_timeout=30):
        messages.append(json.loads(message.content))
        client.delete_message(message)
    return messages


def raw_queue_bodies(services: Services, queue_name: str) -> list[bytes]:
    """Peek at the stored text and base64-decode it: what host.json's base64 encoding will see."""
    from azure.storage.queue import QueueClient

    plain = QueueClient.from_connection_string(services.settings.storage.connection_string, queue_name)
    return [base64.b64decode(m.content) for m in plain.peek_messages(max_messages=32)]
