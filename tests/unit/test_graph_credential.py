"""Graph credentials come from azure.identity.aio (https://github.com/microsoft/kiota-authentication-azure-python: the
provider awaits the
credential on the event loop, so a sync credential blocks it at each token refresh), one per event loop."""

from __future__ import annotations

import asyncio

from shared.adapters.graph import graph_credential


def test_a_client_secret_gives_an_async_credential_per_call() -> None:
    from azure.identity.aio import ClientSecretCredential

    factory = graph_credential("tenant", "client", "secret")
    first, second = factory(), factory()
    assert isinstance(first, ClientSecretCredential) and first is not second
    assert asyncio.iscoroutinefunction(first.get_token)
    asyncio.run(first.close())
    asyncio.run(second.close())


def test_without_a_secret_the_managed_identity_is_async_too() -> None:
    from azure.identity.aio import ManagedIdentityCredential

    credential = graph_credential("tenant", "client", None)()
    assert isinstance(credential, ManagedIdentityCredential)
    asyncio.run(credential.close())
