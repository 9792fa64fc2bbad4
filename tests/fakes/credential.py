"""``StaticTokenCredential``: an azure.core ``AsyncTokenCredential`` that needs no Entra ID.

Why: msgraph-sdk authenticates every request through kiota's ``AzureIdentityAuthenticationProvider``,
which asks a credential for a token. Against ``FakeGraph`` any bearer token will do, so this
credential hands out a fixed one and never touches the network.

How msgraph reaches a plain-http fake (checked against kiota-authentication-azure 1.16, which the
app's Graph adapter reuses):

* ``AzureIdentityAccessTokenProvider`` accepts ``http`` when the host is one of
  ``localhost``, ``127.0.0.1``, ``::1``; other hosts must be https. No custom provider is needed.
* ``allowed_hosts`` are bare host names (no scheme, no port): ``["127.0.0.1"]``. A host not in the
  list silently gets *no* Authorization header (the fake then answers 401).
* Pass ``scopes=["https://graph.microsoft.com/.default"]`` explicitly; otherwise the scope is
  derived from the request host (``http://127.0.0.1/.default``).

```python
import httpx
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory

auth = AzureIdentityAuthenticationProvider(
    StaticTokenCredential(), scopes=["https://graph.microsoft.com/.default"],
    allowed_hosts=["127.0.0.1"])
http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient())
adapter = GraphRequestAdapter(auth, http)
adapter.base_url = graph.base_url          # "http://127.0.0.1:<port>/v1.0", no trailing slash
client = GraphServiceClient(request_adapter=adapter)
```
"""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo

__all__ = ["StaticTokenCredential"]

_FAR_FUTURE = int(time.time()) + 10 * 365 * 24 * 3600


class StaticTokenCredential:
    """Implements ``azure.core.credentials_async.AsyncTokenCredential`` (and the newer
    ``AsyncSupportsTokenInfo``) with a constant token that expires in ten years."""

    def __init__(self, token: str = "fake-token") -> None:
        self.token = token
        self.requested_scopes: list[tuple[str, ...]] = []  # for tests that check the scope

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.requested_scopes.append(tuple(scopes))
        return AccessToken(self.token, _FAR_FUTURE)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.requested_scopes.append(tuple(scopes))
        return AccessTokenInfo(self.token, _FAR_FUTURE)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
