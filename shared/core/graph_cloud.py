"""Which Microsoft cloud a Graph base URL names: the token scope and the sign-in authority follow it.

Why: a token for `https://graph.microsoft.com/.default` is refused by a national cloud's Graph, and an
app registered in a national cloud cannot sign in at the public authority. The service root endpoints
and token service (Microsoft Entra) endpoints are those of Microsoft Learn, "Microsoft Graph national
cloud deployments": https://learn.microsoft.com/graph/deployments ; that any scope naming Graph
"MUST use the domain of the Microsoft Graph service root endpoint for the national cloud deployment":
https://learn.microsoft.com/graph/sdks/national-clouds ; the authority hosts are azure-identity's
`AzureAuthorityHosts`: https://learn.microsoft.com/python/api/azure-identity/azure.identity.azureauthorityhosts
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

PUBLIC_AUTHORITY = "login.microsoftonline.com"


@dataclass(frozen=True)
class GraphCloud:
    name: str
    graph_host: str
    authority: str  # the Microsoft Entra host where the app signs in

    @property
    def scopes(self) -> list[str]:
        return [f"https://{self.graph_host}/.default"]


CLOUDS = (
    GraphCloud("global", "graph.microsoft.com", PUBLIC_AUTHORITY),
    GraphCloud("US Government L4", "graph.microsoft.us", "login.microsoftonline.us"),
    GraphCloud("US Government L5 (DOD)", "dod-graph.microsoft.us", "login.microsoftonline.us"),
    GraphCloud("China (21Vianet)", "microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"),
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class UnknownGraphCloud(ValueError):
    """The URL names no Microsoft Graph deployment: no scope can be guessed for it."""


def graph_cloud(base_url: str) -> GraphCloud:
    """The cloud of a Graph base URL. Loopback (local runs and tests, whose credential ignores the
    scope) is the global cloud; any other host that is not a Graph deployment is refused rather than
    given the public scope, which its tokens would not be valid for."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host in LOOPBACK:
        return CLOUDS[0]
    for cloud in CLOUDS:
        if host == cloud.graph_host:
            return cloud
    known = ", ".join(f"https://{c.graph_host}/v1.0" for c in CLOUDS)
    raise UnknownGraphCloud(f"{host or base_url!r} is not a Microsoft Graph endpoint (one of {known})")
