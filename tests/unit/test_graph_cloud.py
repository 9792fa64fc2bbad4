"""A national cloud's Graph gets a token for its own scope, signed at its own authority.

Source of the endpoints: Microsoft Learn, "Microsoft Graph national cloud deployments"
(https://learn.microsoft.com/graph/deployments) and "Access national cloud deployments with the
Microsoft Graph SDKs" (https://learn.microsoft.com/graph/sdks/national-clouds: any scope naming Graph
must use the national cloud's Graph domain).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.adapters.graph import GraphGateway
from shared.core.graph_cloud import UnknownGraphCloud, graph_cloud
from shared.services import Services
from shared.settings import SettingsError, load_settings
from tests.unit.test_settings import minimal_env

CLOUDS = [
    ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default", "login.microsoftonline.com"),
    ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default", "login.microsoftonline.us"),
    ("https://dod-graph.microsoft.us/v1.0", "https://dod-graph.microsoft.us/.default", "login.microsoftonline.us"),
    (
        "https://microsoftgraph.chinacloudapi.cn/v1.0",
        "https://microsoftgraph.chinacloudapi.cn/.default",
        "login.chinacloudapi.cn",
    ),
]


@pytest.mark.parametrize(("base_url", "scope", "authority"), CLOUDS)
def test_scope_and_authority_follow_the_base_url(base_url, scope, authority):
    cloud = graph_cloud(base_url)
    assert (cloud.scopes, cloud.authority) == ([scope], authority)


@pytest.mark.parametrize("base_url", ["https://graph.example.com/v1.0", "https://graph.microsoft.com.evil.io/v1.0"])
def test_a_host_that_is_no_graph_deployment_is_refused_by_the_settings(base_url):
    with pytest.raises(UnknownGraphCloud):
        graph_cloud(base_url)
    with pytest.raises(SettingsError, match="GRAPH_BASE_URL"):
        load_settings(minimal_env(GRAPH_BASE_URL=base_url))


class _Recorded(Exception):
    pass


class RecordingCredential:
    """An async credential that records the scopes it is asked for, then fails (no network)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **_: Any) -> Any:
        self.scopes.append(scopes)
        raise _Recorded

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(("base_url", "scope", "authority"), CLOUDS[1:])
def test_the_gateway_asks_the_credential_for_the_national_scope(base_url, scope, authority):
    credential = RecordingCredential()
    gateway = GraphGateway(base_url, credential, max_retries=0)

    async def call() -> None:
        with pytest.raises(Exception):  # noqa: B017 - whatever the SDK wraps the credential's failure in
            await gateway.get_event("mailbox", "event")

    asyncio.run(call())
    assert credential.scopes == [(scope,)]


def test_a_client_secret_signs_in_at_the_national_authority(monkeypatch):
    import azure.identity.aio as identity

    built: list[dict[str, Any]] = []

    def fake_secret_credential(*args: Any, **kwargs: Any) -> RecordingCredential:
        built.append({"args": args, **kwargs})
        return RecordingCredential()

    monkeypatch.setattr(identity, "ClientSecretCredential", fake_secret_credential)
    settings = load_settings(minimal_env(GRAPH_BASE_URL="https://graph.microsoft.us/v1.0", GRAPH_CLIENT_SECRET="s"))
    gateway = Services(settings).graph

    async def call() -> None:
        with pytest.raises(Exception):  # noqa: B017
            await gateway.get_event("mailbox", "event")

    asyncio.run(call())
    assert [b["authority"] for b in built] == ["login.microsoftonline.us"]
