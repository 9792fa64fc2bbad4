"""App settings: read and validated once, with errors naming the setting."""

from __future__ import annotations

import os

import pytest

from shared.core.consent import Consent
from shared.settings import SETTING_NAMES, SETTINGS, SettingsError, StorageSettings, load_settings

STORAGE = "AzureWebJobsStorage"
CONNECTION_STRING = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
SECRET = "0123456789abcdef0123456789abcdef"  # exactly 32 characters, the minimum
assert len(SECRET) == 32

ALL_SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
ALL_SENSITIVITY = ("normal", "personal", "private", "confidential")


def minimal_env(**overrides: str | None) -> dict[str, str]:
    """Only the required settings; an override of None removes the setting."""
    env = {
        STORAGE: CONNECTION_STRING,
        "GRAPH_TENANT_ID": "7a1f3c5e-0000-4000-8000-00000000aaaa",
        "GRAPH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "NOTIFICATION_URL": "https://sync.example.com/api/notifications?code=k1",
        "LIFECYCLE_NOTIFICATION_URL": "https://sync.example.com/api/lifecycle?code=k2",
        "CLIENT_STATE_SECRET": SECRET,
        "DIME_API_KEY": "dime-key",
        "DIME_PUBLICATIONS_KEY": "publications-key-0123456789abcdef",
        "DIME_TIME_ZONE": "Europe/Brussels",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def full_env() -> dict[str, str]:
    return minimal_env(
        GRAPH_CLIENT_SECRET="graph-client-secret",
        GRAPH_BASE_URL="https://graph.microsoft.us/v1.0/",
        CLIENT_STATE_SECRET_PREVIOUS="previous-secret-0123456789abcdef",
        DIME_BASE_URL="https://sandbox.api.dimescheduler.com/",
        SYNC_DAYS_BACK="7",
        SYNC_DAYS_FORWARD="90",
        DEFAULT_ENABLED="false",
        DEFAULT_SHOW_AS="busy,OOF",
        DEFAULT_SENSITIVITY="normal",
        SYNC_PRIVATE_DETAILS="true",
        DELTA_SCHEDULE="0 */1 * * * *",
    )


REQUIRED = [s.name for s in SETTINGS if s.required]


def test_required_settings_are_the_expected_ones() -> None:
    assert set(REQUIRED) == {
        STORAGE,
        "GRAPH_TENANT_ID",
        "GRAPH_CLIENT_ID",
        "NOTIFICATION_URL",
        "LIFECYCLE_NOTIFICATION_URL",
        "CLIENT_STATE_SECRET",
        "DIME_API_KEY",
        "DIME_PUBLICATIONS_KEY",
        "DIME_TIME_ZONE",
    }
    assert set(minimal_env()) == set(REQUIRED)


def test_setting_names_unique_and_defaults_only_on_optional() -> None:
    assert len(SETTING_NAMES) == len(set(SETTING_NAMES))
    for setting in SETTINGS:
        if setting.required:
            assert setting.default is None, setting.name
        assert setting.meaning


def test_full_env() -> None:
    settings = load_settings(full_env())
    assert settings.storage == StorageSettings(connection_string=CONNECTION_STRING)
    assert settings.graph_tenant_id == "7a1f3c5e-0000-4000-8000-00000000aaaa"
    assert settings.graph_client_id == "11111111-2222-3333-4444-555555555555"
    assert settings.graph_client_secret == "graph-client-secret"
    assert settings.graph_base_url == "https://graph.microsoft.us/v1.0"
    assert settings.notification_url == "https://sync.example.com/api/notifications?code=k1"
    assert settings.lifecycle_notification_url == "https://sync.example.com/api/lifecycle?code=k2"
    assert settings.client_state_secrets == (SECRET, "previous-secret-0123456789abcdef")
    assert settings.dime_base_url == "https://sandbox.api.dimescheduler.com"
    assert settings.dime_api_key == "dime-key"
    assert settings.sync_days_back == 7
    assert settings.sync_days_forward == 90
    assert settings.default_consent == Consent(False, frozenset({"busy", "oof"}), frozenset({"normal"}))
    assert settings.sync_private_details is True


def test_defaults_applied() -> None:
    settings = load_settings(minimal_env())
    assert settings.graph_client_secret is None
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.dime_base_url == "https://api.dimescheduler.com"
    assert settings.client_state_secrets == (SECRET,)
    assert settings.sync_days_back == 30
    assert settings.sync_days_forward == 180
    assert settings.default_consent == Consent(
        True, frozenset({"tentative", "busy", "oof", "workingElsewhere"}), frozenset({"normal", "personal"})
    )
    assert settings.sync_private_details is False


def test_blank_optional_values_fall_back_to_defaults() -> None:
    settings = load_settings(minimal_env(SYNC_DAYS_BACK="", GRAPH_BASE_URL="   ", CLIENT_STATE_SECRET_PREVIOUS=" "))
    assert settings.sync_days_back == 30
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.client_state_secrets == (SECRET,)


def test_values_are_stripped() -> None:
    settings = load_settings(minimal_env(DIME_API_KEY="  dime-key \n", SYNC_DAYS_BACK=" 5 "))
    assert settings.dime_api_key == "dime-key"
    assert settings.sync_days_back == 5


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("blank", [None, "", "   "])
def test_missing_required_setting_is_named(name: str, blank: str | None) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(**{name: blank}))
    assert name in str(caught.value)


def test_nothing_set_names_a_setting() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({})
    assert any(name in str(caught.value) for name in REQUIRED)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNC_DAYS_BACK", "abc"),
        ("SYNC_DAYS_BACK", "3.5"),
        ("SYNC_DAYS_BACK", "-1"),
        ("SYNC_DAYS_BACK", "366"),
        ("SYNC_DAYS_BACK", "1e3"),
        ("SYNC_DAYS_FORWARD", "0"),
        ("SYNC_DAYS_FORWARD", "366"),
        ("SYNC_DAYS_FORWARD", "ten"),
        ("DEFAULT_ENABLED", "maybe"),
        ("DEFAULT_ENABLED", "on"),
        ("SYNC_PRIVATE_DETAILS", "2"),
        ("SYNC_PRIVATE_DETAILS", "truee"),
        ("GRAPH_BASE_URL", "ftp://graph.microsoft.com/v1.0"),
        ("GRAPH_BASE_URL", "graph.microsoft.com/v1.0"),
        ("GRAPH_BASE_URL", "https://"),
        ("DIME_BASE_URL", "not a url"),
        ("DIME_BASE_URL", "file:///etc/passwd"),
        ("NOTIFICATION_URL", "/api/notifications"),
        ("NOTIFICATION_URL", "javascript:alert(1)"),
        ("LIFECYCLE_NOTIFICATION_URL", "sync.example.com/api/lifecycle"),
        ("CLIENT_STATE_SECRET", "short"),
        ("CLIENT_STATE_SECRET", SECRET[:-1]),
        ("CLIENT_STATE_SECRET_PREVIOUS", "short"),
        ("CLIENT_STATE_SECRET_PREVIOUS", SECRET[:-1]),
        ("DEFAULT_SHOW_AS", "busy,away"),
        ("DEFAULT_SENSITIVITY", "normal,secret"),
    ],
)
def test_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(**{name: value}))
    assert name in str(caught.value)


@pytest.mark.parametrize("name", ["NOTIFICATION_URL", "LIFECYCLE_NOTIFICATION_URL"])
def test_notification_urls_must_be_https(name: str) -> None:
    """Graph only delivers to HTTPS endpoints (the setting is documented as "public HTTPS URL")."""
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(**{name: "http://sync.example.com/api/notifications?code=k"}))
    assert name in str(caught.value)


@pytest.mark.parametrize("name", ["NOTIFICATION_URL", "LIFECYCLE_NOTIFICATION_URL", "DIME_PUBLICATIONS_URL"])
def test_a_refused_url_never_shows_its_function_key(name: str) -> None:
    """These URLs carry the function key (?code=): the error, which goes to the logs, names the
    setting and what is wrong, never the key."""
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(**{name: "http://sync.example.com/api/x?code=SeCrEtFuNcTiOnKeY=="}))
    assert name in str(caught.value)
    assert "SeCrEtFuNcTiOnKeY" not in str(caught.value)
    assert "sync.example.com" in str(caught.value)


@pytest.mark.parametrize("name", ["DIME_BASE_URL", "GRAPH_BASE_URL"])
def test_service_base_urls_must_be_https_except_loopback(name: str) -> None:
    """The API key and Graph tokens travel in headers: never over plain HTTP on a network."""
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(**{name: "http://dime.example.com"}))
    assert name in str(caught.value)


def test_http_allowed_for_loopback_service_base_urls() -> None:
    # Local runs and tests talk to loopback simulators over plain HTTP.
    settings = load_settings(minimal_env(GRAPH_BASE_URL="http://127.0.0.1:8080", DIME_BASE_URL="http://localhost:9/"))
    assert settings.graph_base_url == "http://127.0.0.1:8080"
    assert settings.dime_base_url == "http://localhost:9"


def test_secret_of_exactly_thirty_two_characters_accepted() -> None:
    settings = load_settings(minimal_env(CLIENT_STATE_SECRET_PREVIOUS="f" * 32))
    assert settings.client_state_secrets == (SECRET, "f" * 32)


def test_secret_error_does_not_leak_the_secret() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(CLIENT_STATE_SECRET="hunter2-secret"))
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("name", "low", "high"), [("SYNC_DAYS_BACK", 0, 365), ("SYNC_DAYS_FORWARD", 1, 365)])
def test_int_bounds_inclusive(name: str, low: int, high: int) -> None:
    attribute = name.lower()
    assert getattr(load_settings(minimal_env(**{name: str(low)})), attribute) == low
    assert getattr(load_settings(minimal_env(**{name: str(high)})), attribute) == high


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("false", False), ("No", False), ("0", False)],
)
def test_bool_spellings(raw: str, expected: bool) -> None:
    assert load_settings(minimal_env(SYNC_PRIVATE_DETAILS=raw)).sync_private_details is expected
    assert load_settings(minimal_env(DEFAULT_ENABLED=raw)).default_consent.enabled is expected


def test_invalid_default_show_as_lists_allowed_values() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(DEFAULT_SHOW_AS="busy,sometimes"))
    message = str(caught.value)
    assert "DEFAULT_SHOW_AS" in message
    assert "sometimes" in message
    for value in ALL_SHOW_AS:
        assert value in message


def test_invalid_default_sensitivity_lists_allowed_values() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(DEFAULT_SENSITIVITY="top-secret"))
    for value in ALL_SENSITIVITY:
        assert value in str(caught.value)


def test_graph_tenant_id_lower_cased() -> None:
    settings = load_settings(minimal_env(GRAPH_TENANT_ID="7A1F3C5E-0000-4000-8000-00000000AAAA"))
    assert settings.graph_tenant_id == "7a1f3c5e-0000-4000-8000-00000000aaaa"


def test_previous_secret_is_second() -> None:
    settings = load_settings(minimal_env(CLIENT_STATE_SECRET_PREVIOUS="the-previous-secret!-0123456789ab"))
    assert settings.client_state_secrets == (SECRET, "the-previous-secret!-0123456789ab")


# --- storage -----------------------------------------------------------------------------------


def test_identity_based_storage() -> None:
    env = minimal_env(
        **{
            STORAGE: None,
            STORAGE + "__queueServiceUri": "https://acct.queue.core.windows.net/",
            STORAGE + "__tableServiceUri": "https://acct.table.core.windows.net",
            STORAGE + "__credential": "managedidentity",
            STORAGE + "__clientId": "99999999-8888-7777-6666-555555555555",
        }
    )
    assert load_settings(env).storage == StorageSettings(
        connection_string=None,
        queue_service_uri="https://acct.queue.core.windows.net",
        table_service_uri="https://acct.table.core.windows.net",
        credential="managedidentity",
        client_id="99999999-8888-7777-6666-555555555555",
    )


def test_identity_based_storage_without_credential_settings() -> None:
    env = minimal_env(
        **{
            STORAGE: None,
            STORAGE + "__queueServiceUri": "https://acct.queue.core.windows.net",
            STORAGE + "__tableServiceUri": "https://acct.table.core.windows.net",
        }
    )
    storage = load_settings(env).storage
    assert storage.connection_string is None
    assert (storage.credential, storage.client_id) == (None, None)


def test_account_name_alone_derives_uris() -> None:
    env = minimal_env(**{STORAGE: None, STORAGE + "__accountName": "syncstore42"})
    storage = load_settings(env).storage
    assert storage.connection_string is None
    assert storage.queue_service_uri == "https://syncstore42.queue.core.windows.net"
    assert storage.table_service_uri == "https://syncstore42.table.core.windows.net"


def test_account_name_fills_only_the_missing_uri() -> None:
    env = minimal_env(
        **{
            STORAGE: None,
            STORAGE + "__accountName": "syncstore42",
            STORAGE + "__queueServiceUri": "https://custom-queue.example.com",
        }
    )
    storage = load_settings(env).storage
    assert storage.queue_service_uri == "https://custom-queue.example.com"
    assert storage.table_service_uri == "https://syncstore42.table.core.windows.net"


@pytest.mark.parametrize("only", ["__queueServiceUri", "__tableServiceUri", "__credential", "__clientId"])
def test_incomplete_identity_storage_is_an_error(only: str) -> None:
    env = minimal_env(**{STORAGE: None, STORAGE + only: "https://acct.queue.core.windows.net"})
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert STORAGE in str(caught.value)


def test_connection_string_wins_over_identity_settings() -> None:
    env = minimal_env(**{STORAGE + "__queueServiceUri": "https://acct.queue.core.windows.net"})
    assert load_settings(env).storage == StorageSettings(connection_string=CONNECTION_STRING)


def test_development_storage_expands_to_azurite_endpoints() -> None:
    storage = load_settings(minimal_env(**{STORAGE: "UseDevelopmentStorage=true"})).storage
    assert storage.queue_service_uri is None
    parts = dict(p.split("=", 1) for p in (storage.connection_string or "").split(";") if p)
    assert parts["DefaultEndpointsProtocol"] == "http"
    assert parts["AccountName"] == "devstoreaccount1"
    # Azurite's well-known development key (public, documented by Microsoft).
    assert parts["AccountKey"] == (
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    )
    assert parts["BlobEndpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    assert parts["QueueEndpoint"] == "http://127.0.0.1:10001/devstoreaccount1"
    assert parts["TableEndpoint"] == "http://127.0.0.1:10002/devstoreaccount1"


def test_connection_string_is_stripped() -> None:
    storage = load_settings(minimal_env(**{STORAGE: "  " + CONNECTION_STRING + "\n"})).storage
    assert storage.connection_string == CONNECTION_STRING


# --- reading os.environ ------------------------------------------------------------------------


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in SETTING_NAMES or name.startswith(STORAGE):
            monkeypatch.delenv(name)
    for name, value in minimal_env(SYNC_DAYS_FORWARD="42").items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.sync_days_forward == 42
    assert settings.dime_api_key == "dime-key"


@pytest.mark.parametrize("name", ["DIME_API_KEY", "CLIENT_STATE_SECRET", "GRAPH_CLIENT_SECRET", "AzureWebJobsStorage"])
def test_unresolved_key_vault_reference_is_a_settings_error_naming_it(name: str) -> None:
    """App Service leaves "@Microsoft.KeyVault(...)" in place when it cannot resolve it."""
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/the-secret-value-xyz)"
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(**{name: reference}))
    assert name in str(caught.value) and "Key Vault" in str(caught.value)
    assert "the-secret-value-xyz" not in str(caught.value)


def test_placeholders_of_the_example_file_fail_naming_every_one() -> None:
    env = minimal_env(NOTIFICATION_URL="https://<your-tunnel>/api/notifications?code=<function key>")
    env["DIME_API_KEY"] = "<Dime.Scheduler API key>"
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert "NOTIFICATION_URL" in str(caught.value) and "DIME_API_KEY" in str(caught.value)


def test_example_settings_file_lists_every_setting_and_fails_validation_as_is() -> None:
    import json
    from pathlib import Path

    example = json.loads((Path(__file__).resolve().parents[2] / "local.settings.json.example").read_text())
    values = example["Values"]
    assert set(SETTING_NAMES) <= set(values)
    with pytest.raises(SettingsError) as caught:
        load_settings(values)
    assert "placeholder" in str(caught.value)


COMPONENT = (
    "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg-dimecal"
    "/providers/Microsoft.Insights/components/appi-dimecal-abc"
)


def test_console_appinsights_resource_id_is_optional_and_validated() -> None:
    assert load_settings(minimal_env()).appinsights_resource_id is None
    assert load_settings(minimal_env(CONSOLE_APPINSIGHTS_RESOURCE_ID=COMPONENT)).appinsights_resource_id == COMPONENT
    wrong_type = COMPONENT.replace("components", "workspaces")
    for bad in ("appi-dimecal-abc", COMPONENT + "/extra", wrong_type, "javascript:x"):
        with pytest.raises(SettingsError, match="CONSOLE_APPINSIGHTS_RESOURCE_ID"):
            load_settings(minimal_env(CONSOLE_APPINSIGHTS_RESOURCE_ID=bad))


@pytest.mark.parametrize(
    ("attempts", "days", "expected"),
    [(None, None, 30), ("8", "14", 14), ("8", "3650", 3650), ("50", "18", 18), ("100", "31", 31)],
)
def test_tombstone_retention_days_at_least_what_late_deliveries_need(attempts, days, expected):
    env = minimal_env(RETRY_MAX_ATTEMPTS=attempts, TOMBSTONE_RETENTION_DAYS=days)
    assert load_settings(env).tombstone_retention_days == expected


@pytest.mark.parametrize(
    ("attempts", "days", "message"),
    [
        (None, "13", "at least 14 with RETRY_MAX_ATTEMPTS=8"),
        ("50", "17", "at least 18 with RETRY_MAX_ATTEMPTS=50"),
        ("100", None, "at least 31 with RETRY_MAX_ATTEMPTS=100"),  # the default is not enough there
        (None, "0", "between 1 and 3650"),
        (None, "3651", "between 1 and 3650"),
        (None, "thirty", "whole number"),
    ],
)
def test_tombstone_retention_days_too_short_or_malformed_is_refused(attempts, days, message):
    env = minimal_env(RETRY_MAX_ATTEMPTS=attempts, TOMBSTONE_RETENTION_DAYS=days)
    with pytest.raises(SettingsError, match="TOMBSTONE_RETENTION_DAYS") as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_the_publications_key_is_required_long_url_safe_and_rotatable() -> None:
    """The publications routes are anonymous to the host: without their own key they would be open."""
    with pytest.raises(SettingsError, match="DIME_PUBLICATIONS_KEY"):
        load_settings(minimal_env(DIME_PUBLICATIONS_KEY=None))
    for bad in ("short", "k" * 31, "a" * 32 + "&code=x", "a" * 32 + " b"):
        with pytest.raises(SettingsError, match="DIME_PUBLICATIONS_KEY"):
            load_settings(minimal_env(DIME_PUBLICATIONS_KEY=bad))
    with pytest.raises(SettingsError, match="DIME_PUBLICATIONS_KEY_PREVIOUS"):
        load_settings(minimal_env(DIME_PUBLICATIONS_KEY_PREVIOUS="p" * 31))
    settings = load_settings(minimal_env(DIME_PUBLICATIONS_KEY_PREVIOUS="previous-publications-key-0123456789"))
    assert settings.dime_publications_keys == (
        "publications-key-0123456789abcdef",
        "previous-publications-key-0123456789",
    )


def test_dime_outlook_targets_default_onboarded_directory_or_a_clear_error() -> None:
    assert load_settings(minimal_env()).dime_outlook_targets == "onboarded"
    assert load_settings(minimal_env(DIME_OUTLOOK_TARGETS="Directory")).dime_outlook_targets == "directory"
    with pytest.raises(SettingsError, match="DIME_OUTLOOK_TARGETS must be one of onboarded, directory, got 'tenant'"):
        load_settings(minimal_env(DIME_OUTLOOK_TARGETS="tenant"))


def test_dime_time_zone_is_required_and_named_when_missing() -> None:
    """No default: UTC would put every planner appointment one or two hours off in Europe."""
    for missing in (None, "", "   "):
        with pytest.raises(SettingsError, match="DIME_TIME_ZONE"):
            load_settings(minimal_env(DIME_TIME_ZONE=missing))


@pytest.mark.parametrize(
    ("given", "iana"),
    [
        ("Europe/Brussels", "Europe/Brussels"),
        (" Asia/Kolkata ", "Asia/Kolkata"),
        ("Romance Standard Time", "Europe/Paris"),  # Windows names (Dime.Scheduler is a .NET product)
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("w. europe standard time", "Europe/Berlin"),
        ("Cen. Australia Standard Time", "Australia/Adelaide"),
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
    ],
)
def test_dime_time_zone_accepts_iana_and_windows_names(given: str, iana: str) -> None:
    settings = load_settings(minimal_env(DIME_TIME_ZONE=given))
    assert settings.dime_time_zone == iana
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    for moment in (datetime(2026, 1, 15, 12, tzinfo=UTC), datetime(2026, 7, 15, 12, tzinfo=UTC)):  # winter, summer
        assert moment.astimezone(settings.dime_zone).utcoffset() == moment.astimezone(ZoneInfo(iana)).utcoffset()


@pytest.mark.parametrize("given", ["Brussels", "Europe/Atlantis", "Romance Time", "+02:00", "../../etc/passwd"])
def test_an_unknown_dime_time_zone_is_a_settings_error_naming_it(given: str) -> None:
    with pytest.raises(SettingsError, match="DIME_TIME_ZONE") as caught:
        load_settings(minimal_env(DIME_TIME_ZONE=given))
    assert "Europe/Brussels" in str(caught.value) and "Romance Standard Time" in str(caught.value)


MANAGEMENT = "management-key-0123456789abcdef-0123"


def test_the_management_key_is_optional_validated_and_rotates() -> None:
    assert load_settings(minimal_env()).management_keys == ()  # then only a signed-in admin opens /api/manage
    keys = load_settings(minimal_env(MANAGEMENT_KEY=MANAGEMENT, MANAGEMENT_KEY_PREVIOUS=MANAGEMENT[::-1]))
    assert keys.management_keys == (MANAGEMENT, MANAGEMENT[::-1])
    with pytest.raises(SettingsError, match="MANAGEMENT_KEY must be at least 32"):
        load_settings(minimal_env(MANAGEMENT_KEY="short"))
    with pytest.raises(SettingsError, match="MANAGEMENT_KEY must be URL-safe"):
        load_settings(minimal_env(MANAGEMENT_KEY=MANAGEMENT + "&x"))
    with pytest.raises(SettingsError, match="MANAGEMENT_KEY_PREVIOUS is set without MANAGEMENT_KEY"):
        load_settings(minimal_env(MANAGEMENT_KEY_PREVIOUS=MANAGEMENT))


@pytest.mark.parametrize(
    ("value", "trusted"),
    [(None, False), ("false", False), ("True", True), ("true", True), ("1", False), ("yes", False)],
)
def test_app_service_authentication_is_on_only_when_the_platform_says_true(value, trusted) -> None:
    assert load_settings(minimal_env(WEBSITE_AUTH_ENABLED=value)).app_service_auth is trusted
