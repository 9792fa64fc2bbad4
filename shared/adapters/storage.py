"""Storage clients built from the same settings the Functions host uses.

The host reads `AzureWebJobsStorage` (a connection string) or `AzureWebJobsStorage__*`
(identity-based); our own table and queue clients must reach the same account either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient


def storage_credential(storage: StorageSettings) -> TokenCredential:
    """Managed identity (user-assigned when a client id is given), else DefaultAzureCredential."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if (storage.credential or "").lower() == "managedidentity":
        return (
            ManagedIdentityCredential(client_id=storage.client_id) if storage.client_id else ManagedIdentityCredential()
        )
    return DefaultAzureCredential(managed_identity_client_id=storage.client_id)


def table_service(storage: StorageSettings) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    if storage.connection_string:
        return TableServiceClient.from_connection_string(storage.connection_string)
    assert storage.table_service_uri
    return TableServiceClient(endpoint=storage.table_service_uri, credential=storage_credential(storage))


def queue_service(storage: StorageSettings) -> QueueServiceClient:
    from azure.storage.queue import QueueServiceClient

    if storage.connection_string:
        return QueueServiceClient.from_connection_string(storage.connection_string)
    assert storage.queue_service_uri
    return QueueServiceClient(account_url=storage.queue_service_uri, credential=storage_credential(storage))
