"""Storage clients built from the same settings the Functions host uses.

The host reads `AzureWebJobsStorage` (a connection string) or `AzureWebJobsStorage__*`
(identity-based); our own table and queue clients must reach the same account either way.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

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


def environment_options(url: str) -> dict[str, Any]:
    """The environment's proxy and CA bundle for this endpoint, read once per client.

    requests otherwise reads them on every request (`trust_env`): a scan of every environment
    variable (on a Functions host, every app setting) for proxies and no_proxy, a CA bundle
    variable, a look for a .netrc: about 0.2-0.3 ms of CPU per storage call, 15 % of a queue put.
    Read here with requests' own helpers, they give every request the same proxies and bundle; the
    environment of a running host does not change (a changed app setting restarts it). Credentials
    in a .netrc are left to requests (per request, as before)."""
    from requests.utils import get_environ_proxies, get_netrc_auth

    if get_netrc_auth(url):
        return {}
    options: dict[str, Any] = {"use_env_settings": False}
    proxies = get_environ_proxies(url)
    if proxies:
        options["proxies"] = proxies
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


def table_service(storage: StorageSettings) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    return _service(TableServiceClient, "endpoint", storage, storage.table_service_uri)


def queue_service(storage: StorageSettings) -> QueueServiceClient:
    from azure.storage.queue import QueueServiceClient

    return _service(QueueServiceClient, "account_url", storage, storage.queue_service_uri)


def async_storage_credential(storage: StorageSettings) -> Any:
    """`storage_credential` for the asynchronous clients (azure.identity.aio: the same choice)."""
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    if (storage.credential or "").lower() == "managedidentity":
        return (
            ManagedIdentityCredential(client_id=storage.client_id) if storage.client_id else ManagedIdentityCredential()
        )
    return DefaultAzureCredential(managed_identity_client_id=storage.client_id)


def async_table_service(storage: StorageSettings, credential: Any = None) -> Any:
    """An `azure.data.tables.aio.TableServiceClient` for the same account as `table_service`
    (`credential`: an azure.identity.aio credential, needed when there is no connection string)."""
    from azure.data.tables.aio import TableServiceClient

    return _service(TableServiceClient, "endpoint", storage, storage.table_service_uri, credential, aio=True)


def async_queue_service(storage: StorageSettings, credential: Any = None) -> Any:
    """An `azure.storage.queue.aio.QueueServiceClient` for the same account as `queue_service`."""
    from azure.storage.queue.aio import QueueServiceClient

    return _service(QueueServiceClient, "account_url", storage, storage.queue_service_uri, credential, aio=True)


def _service(
    cls: Any,
    url_keyword: str,
    storage: StorageSettings,
    service_uri: str | None,
    credential: Any = None,
    *,
    aio: bool = False,
) -> Any:
    """A service client from the connection string, else from the service URI with the
    storage credential; either way with the environment's options read once (`environment_options`)."""
    if storage.connection_string:
        client = cls.from_connection_string(storage.connection_string)
        options = environment_options(client.url)
        if aio:
            return cls.from_connection_string(storage.connection_string, **_aio_options(options))
        return cls.from_connection_string(storage.connection_string, **options) if options else client
    assert service_uri
    credential = credential if credential is not None else storage_credential(storage)
    options = environment_options(service_uri)
    return cls(**{url_keyword: service_uri}, credential=credential, **(_aio_options(options) if aio else options))


def _aio_options(options: dict[str, Any]) -> dict[str, Any]:
    """`environment_options` for an aio client: the transport's settings go to a transport that
    builds its TLS context once (`shared_tls_transport`), the rest (proxies) to the client."""
    options = dict(options)
    transport = {k: options.pop(k) for k in ("connection_verify", "use_env_settings") if k in options}
    return {**options, "transport": shared_tls_transport(**transport)}


# An idle connection is reused for at most this long (below every server's idle timeout we know of:
# Azurite's 5 s; a new connection after a pause costs one handshake).
KEEPALIVE_SECONDS = 3.0


@functools.cache
def _tls_context(cafile: str) -> Any:
    import ssl

    return ssl.create_default_context(cafile=cafile)


@functools.cache
def _transport_class() -> Any:
    from azure.core.pipeline.transport import AioHttpTransport

    class _SharedTls(AioHttpTransport):  # type: ignore[misc]
        """azure-core's aiohttp transport builds a new SSLContext, loading the whole CA bundle, for
        every request when `connection_verify` names a bundle (`AioHttpTransport._build_ssl_config`,
        azure-core 1.41): about 50 ms of CPU per table call on this machine, measured by
        scripts/bench_dime_async.py. The context depends only on the bundle: built once, shared.

        Its session also reuses an idle connection for at most KEEPALIVE_SECONDS (`open`)."""

        def _build_ssl_config(self, cert: Any, verify: Any) -> Any:
            if cert or verify in (True, False):
                return super()._build_ssl_config(cert, verify)
            return _tls_context(str(verify))

        async def open(self) -> None:
            """azure-core's session, with a connector that forgets idle connections sooner than a
            server closes them. aiohttp keeps one for 15 s; Azurite (Node's HTTP server) closes
            it after 5 s (DEFAULT_TABLE_KEEP_ALIVE_TIMEOUT / DEFAULT_QUEUE_KEEP_ALIVE_TIMEOUT in
            azurite/dist/src/*/utils/constants.js). A request sent on a connection the server has
            just closed fails before any answer, and azure-core retries no POST that failed so
            (`RetryPolicyBase._is_method_retryable`): a create or a `$batch` would fail outright.
            The delta timer's 2,000 idle mailboxes hit it (bench_timers: 10 failed chunk
            deliveries of 80 with 2 processes before this)."""
            import aiohttp

            if self.session is None and self._session_owner:
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
                    trust_env=self._use_env_settings,
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                )
            await super().open()

    return _SharedTls


def shared_tls_transport(**kwargs: Any) -> Any:
    """An aiohttp transport whose TLS context is built once per CA bundle (the class is made on
    first use: aiohttp is imported only by the asynchronous adapters)."""
    return _transport_class()(**kwargs)
