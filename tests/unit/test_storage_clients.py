"""The storage clients read the environment's proxies and CA bundle once, as requests would have
on every request (`shared/adapters/storage/clients.py`): same answers, without a scan of the environment
per storage call."""

from __future__ import annotations

import pytest

from shared.adapters.storage.clients import environment_options, queue_service, table_service
from shared.settings import StorageSettings

ACCOUNT = "https://contoso.table.core.windows.net/"
ENVIRONMENT = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_without_proxy_settings_requests_stops_reading_the_environment() -> None:
    assert environment_options(ACCOUNT) == {"use_env_settings": False}


def test_a_proxy_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.contoso.com:3128")
    options = environment_options(ACCOUNT)
    assert options["use_env_settings"] is False
    assert options["proxies"]["https"] == "http://proxy.contoso.com:3128"


def test_no_proxy_for_the_account_keeps_it_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.contoso.com:3128")
    monkeypatch.setenv("NO_PROXY", ".core.windows.net")
    assert "proxies" not in environment_options(ACCOUNT)


def test_a_ca_bundle_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/corporate.pem")
    assert environment_options(ACCOUNT)["connection_verify"] == "/etc/ssl/corporate.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/requests.pem")  # requests prefers this one
    assert environment_options(ACCOUNT)["connection_verify"] == "/etc/ssl/requests.pem"


def test_credentials_in_a_netrc_leave_requests_reading_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine contoso.table.core.windows.net login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert environment_options(ACCOUNT) == {}


def test_both_clients_are_built_with_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the app hands the SDKs' public constructors (the proxies and `use_env_settings`, both
    documented azure-core transport options), recorded there rather than read back from the
    clients' private pipeline objects."""
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    built: dict[str, list[dict[str, object]]] = {"tables": [], "queues": []}
    for name, cls in (("tables", TableServiceClient), ("queues", QueueServiceClient)):
        real = cls.from_connection_string.__func__  # type: ignore[attr-defined]

        def record(klass, conn_str, *, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            built[_name].append(kwargs)
            return _real(klass, conn_str, **kwargs)

        monkeypatch.setattr(cls, "from_connection_string", classmethod(record))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.contoso.com:3128")
    storage = StorageSettings(
        connection_string="DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    )
    table_service(storage), queue_service(storage)
    for name in ("tables", "queues"):
        final = built[name][-1]  # the client the app keeps
        assert final["use_env_settings"] is False, name
        assert final["proxies"]["https"] == "http://proxy.contoso.com:3128", name  # type: ignore[index]
