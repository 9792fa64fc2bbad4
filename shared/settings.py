"""The app settings, read and validated in one place.

Everything the code reads from the environment is declared in `SETTINGS`, so a missing or
malformed value fails once, early, with one message naming the setting, and so the Bicep
templates and the README can be checked against a single list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from urllib.parse import SplitResult, urlsplit, urlunsplit

from shared.core.consent import Consent, ConsentError
from shared.names import STORAGE_CONNECTION


class SettingsError(ValueError):
    """A required setting is missing or a setting is malformed; the message names it."""


@dataclass(frozen=True)
class Setting:
    name: str
    required: bool
    default: str | None
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        STORAGE_CONNECTION,
        True,
        None,
        "storage connection string, or identity-based via __queueServiceUri/__tableServiceUri",
    ),
    Setting("GRAPH_TENANT_ID", True, None, "Entra tenant id; notifications from other tenants are refused"),
    Setting("GRAPH_CLIENT_ID", True, None, "client id of the app registration or user-assigned managed identity"),
    Setting("GRAPH_CLIENT_SECRET", False, None, "client secret; without it a managed identity is used"),
    Setting("GRAPH_BASE_URL", False, "https://graph.microsoft.com/v1.0", "Graph endpoint (national clouds, tests)"),
    Setting("NOTIFICATION_URL", True, None, "public HTTPS URL of /api/notifications, with ?code=<function key>"),
    Setting("LIFECYCLE_NOTIFICATION_URL", True, None, "public HTTPS URL of /api/lifecycle, with ?code=<function key>"),
    Setting("CLIENT_STATE_SECRET", True, None, "key from which each subscription's clientState is derived"),
    Setting("CLIENT_STATE_SECRET_PREVIOUS", False, None, "previous key, still accepted during a rotation"),
    Setting("DIME_BASE_URL", False, "https://api.dimescheduler.com", "Dime.Scheduler API root"),
    Setting("DIME_API_KEY", True, None, "Dime.Scheduler API key (X-API-KEY)"),
    Setting("SYNC_DAYS_BACK", False, "30", "sync window: days before today (0-365)"),
    Setting("SYNC_DAYS_FORWARD", False, "180", "sync window: days after today (1-365)"),
    Setting("DEFAULT_ENABLED", False, "true", "consent for a newly seen mailbox: synchronise at all"),
    Setting("DEFAULT_SHOW_AS", False, "tentative,busy,oof,workingElsewhere", "consent: show-as values synchronised"),
    Setting("DEFAULT_SENSITIVITY", False, "normal,personal", "consent: sensitivities synchronised"),
    Setting("SYNC_PRIVATE_DETAILS", False, "false", "send subject and body of private/confidential events"),
    Setting("DELTA_SCHEDULE", False, "0 */5 * * * *", "NCRONTAB of the delta timer (read by the host)"),
    Setting("RECONCILE_SCHEDULE", False, "0 30 2 * * *", "NCRONTAB of the reconcile timer (read by the host)"),
    Setting("RETRY_SCHEDULE", False, "0 */10 * * * *", "NCRONTAB of the retry timer (read by the host)"),
    Setting("RENEW_SCHEDULE", False, "0 0 */6 * * *", "NCRONTAB of the renewal timer (read by the host)"),
    Setting("RETRY_MAX_ATTEMPTS", False, "8", "automatic retries of a failed transaction before it waits for a person"),
    Setting(
        "TOMBSTONE_RETENTION_DAYS",
        False,
        "30",
        "days tombstones and last-error notes are kept: at least as long as a late delivery can arrive",
    ),
    Setting("SUBSCRIPTION_LIFETIME_MINUTES", False, "10000", "lifetime asked for a Graph subscription (45-10000)"),
    Setting("RENEW_WITHIN_MINUTES", False, "1440", "the renewal timer renews subscriptions expiring within this"),
    Setting("DELETE_BREAKER_SHARE", False, "0.2", "delta/reconcile delete nothing if they would delete more (0-1)"),
    Setting("DIME_EVENT_SHOW_AS", False, "busy", "show-as of the Outlook events written for planner appointments"),
    Setting("DIME_OUTLOOK_EDITS", False, "revert", "a person's Outlook edit of a planner-owned event: revert or keep"),
    Setting(
        "DIME_OUTLOOK_TARGETS",
        False,
        "onboarded",
        "whose calendars get planner appointments: onboarded (people onboarded here) or directory (any mailbox"
        " matching the Dime.Scheduler resource's e-mail)",
    ),
    Setting("DIME_CATEGORY_TIME_MARKER", False, "false", "also put the time marker's name into the categories"),
    Setting(
        "DIME_TIME_ZONE",
        True,
        None,
        "Dime.Scheduler's time zone, IANA (Europe/Brussels) or Windows (Romance Standard Time): its date-times "
        "without an offset are wall-clock time there, and Outlook's all-day events go to the board as its midnights",
    ),
    Setting("DIME_RECONCILE_SCHEDULE", False, "0 15 3 * * *", "NCRONTAB of the Dime.Scheduler → Outlook reconcile"),
    Setting("DIME_SOURCE_APPS", False, None, "source apps whose appointments reach Outlook (hook registration)"),
    Setting(
        "DIME_PUBLICATIONS_URL",
        False,
        None,
        "public HTTPS URL of /api/dime/publications (the hook registration adds ?code=DIME_PUBLICATIONS_KEY)",
    ),
    Setting(
        "DIME_PUBLICATIONS_KEY",
        True,
        None,
        "the only key the publications routes accept (not a host key; at least 32 characters)",
    ),
    Setting("DIME_PUBLICATIONS_KEY_PREVIOUS", False, None, "previous publications key, accepted during a rotation"),
    Setting("DIME_WEBHOOK_USERNAME", False, None, "Basic user name Dime.Scheduler must send (optional)"),
    Setting("DIME_WEBHOOK_PASSWORD", False, None, "Basic password Dime.Scheduler must send (with the user name)"),
    Setting(
        "MANAGEMENT_KEY",
        False,
        None,
        "the key the management routes (/api/manage, the console) accept in x-functions-key; not a host key, at least"
        " 32 characters. Without it only a signed-in Connector.Admin opens them",
    ),
    Setting("MANAGEMENT_KEY_PREVIOUS", False, None, "previous management key, accepted during a rotation"),
    Setting(
        "WEBSITE_AUTH_ENABLED",
        False,
        "false",
        "set by App Service, never by hand: True when App Service Authentication is on; only then is the"
        " signed-in principal's header trusted",
    ),
    Setting(
        "ONBOARDING_MAIL_FROM",
        False,
        None,
        "mailbox (UPN or object id) that mails each newly onboarded person the link to their own page; off when"
        " empty (the template grants Mail.Send only when set)",
    ),
    Setting(
        "CONSOLE_APPINSIGHTS_RESOURCE_ID",
        False,
        None,
        "resource id of the Application Insights component the console's Log page links to",
    ),
)

SETTING_NAMES = tuple(s.name for s in SETTINGS)
_BY_NAME = {s.name: s for s in SETTINGS}
MIN_CLIENT_STATE_SECRET = 32  # characters: an HMAC key an attacker cannot guess
KEY_VAULT_REFERENCE = "@microsoft.keyvault("
_PLACEHOLDER = re.compile(r"<[^<>]*>")  # "<function key>", "<tenant id>" from the example file


def _ours(name: str) -> bool:
    return name in _BY_NAME or name.startswith(STORAGE_CONNECTION + "__")


def unresolved_key_vault_references(env: Mapping[str, str]) -> list[str]:
    """Names of our settings whose value is still "@Microsoft.KeyVault(...)": App Service leaves
    the reference text in place when it cannot resolve it (no access, wrong name), and using it
    as a key or URL would fail later, confusingly. Names only, never values."""
    return sorted(n for n, v in env.items() if _ours(n) and v.strip().lower().startswith(KEY_VAULT_REFERENCE))


def placeholders(env: Mapping[str, str]) -> list[str]:
    """Names of our settings still holding a "<...>" placeholder of local.settings.json.example."""
    return sorted(n for n, v in env.items() if _ours(n) and _PLACEHOLDER.search(v))


@dataclass(frozen=True)
class StorageSettings:
    """Either a connection string or identity-based service URIs (managed identity)."""

    connection_string: str | None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None  # "managedidentity" or None (DefaultAzureCredential)
    client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    graph_tenant_id: str
    graph_client_id: str
    graph_client_secret: str | None
    graph_base_url: str
    notification_url: str
    lifecycle_notification_url: str
    client_state_secrets: tuple[str, ...]  # current first, then the previous one
    dime_base_url: str
    dime_api_key: str
    sync_days_back: int
    sync_days_forward: int
    default_consent: Consent
    sync_private_details: bool
    retry_max_attempts: int = 8
    tombstone_retention_days: int = 30
    subscription_lifetime_minutes: int = 10000
    renew_within_minutes: int = 1440
    delete_breaker_share: float = 0.2
    dime_event_show_as: str = "busy"
    dime_outlook_edits: str = "revert"
    dime_outlook_targets: str = "onboarded"
    dime_category_time_marker: bool = False
    dime_time_zone: str = "UTC"  # an IANA name (a Windows name is mapped when the settings are read)
    dime_source_apps: tuple[str, ...] = ()
    dime_publications_url: str | None = None
    dime_webhook_credentials: tuple[str, str] | None = None  # (user name, password) for Basic
    dime_publications_keys: tuple[str, ...] = ()  # current first, then the previous one
    appinsights_resource_id: str | None = None
    management_keys: tuple[str, ...] = ()  # current first, then the previous one; none: sign-in only
    app_service_auth: bool = False  # WEBSITE_AUTH_ENABLED: the platform vouches for X-MS-CLIENT-PRINCIPAL
    onboarding_mail_from: str | None = None  # who sends the onboarding mail; None: no mail

    @property
    def dime_zone(self) -> tzinfo:
        """DIME_TIME_ZONE as a tzinfo (see shared/core/zones.py)."""
        from shared.core.zones import zone_named

        return zone_named(self.dime_time_zone)


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        spec = _BY_NAME[name]
        if spec.required:
            raise SettingsError(f"missing required setting {name} ({spec.meaning})")
        return spec.default
    return value.strip()


def _required(env: Mapping[str, str], name: str) -> str:
    value = _raw(env, name)
    assert value is not None  # required settings never fall back to None
    return value


def _int(env: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = _required(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"setting {name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"setting {name} must be between {low} and {high}, got {value}")
    return value


def _share(env: Mapping[str, str], name: str) -> float:
    raw = _required(env, name)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"setting {name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"setting {name} must be between 0 and 1, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = _required(env, name).lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise SettingsError(f"setting {name} must be true or false, got {raw!r}")


def _url(env: Mapping[str, str], name: str, *, https_only: bool = False) -> str:
    raw = _required(env, name)
    parts = urlsplit(raw)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")  # local runs and tests only
    allowed = ("https",) if https_only and not loopback else ("https", "http")
    if parts.scheme not in allowed or not parts.netloc:
        raise SettingsError(f"setting {name} must be an absolute {' or '.join(allowed)} URL, got {_redacted(parts)!r}")
    return raw.rstrip("/")


def _graph_url(env: Mapping[str, str]) -> str:
    """GRAPH_BASE_URL, naming a Microsoft Graph deployment (the token scope and sign-in authority are
    that cloud's: shared/core/graph_cloud.py), or loopback for local runs and tests."""
    from shared.core.graph_cloud import UnknownGraphCloud, graph_cloud

    url = _url(env, "GRAPH_BASE_URL", https_only=True)
    try:
        graph_cloud(url)
    except UnknownGraphCloud as error:
        raise SettingsError(f"setting GRAPH_BASE_URL: {error}") from None
    return url


def _redacted(parts: SplitResult) -> str:
    """A URL as an error may show it: its query (the function key rides in ?code=), fragment and
    user information are left out."""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host, query="…" if parts.query else "", fragment=""))


_COMPONENT_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[\w.()-]{1,90}/providers/Microsoft\.Insights/components/[\w.()-]{1,260}$",
    re.IGNORECASE,
)


def _resource_id(env: Mapping[str, str], name: str) -> str | None:
    """An Application Insights component's resource id, or None; anything else is refused (the
    console builds a portal link from it)."""
    raw = _raw(env, name)
    if raw is not None and not _COMPONENT_ID.match(raw):
        raise SettingsError(
            f"setting {name} must be an Application Insights resource id "
            "(/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Insights/components/<name>)"
        )
    return raw


def _storage(env: Mapping[str, str]) -> StorageSettings:
    prefix = STORAGE_CONNECTION + "__"
    queue_uri = env.get(prefix + "queueServiceUri")
    table_uri = env.get(prefix + "tableServiceUri")
    connection_string = env.get(STORAGE_CONNECTION, "").strip()
    if connection_string:
        if connection_string == "UseDevelopmentStorage=true":
            connection_string = (
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
                "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
                "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
            )
        return StorageSettings(connection_string=connection_string)
    account = env.get(prefix + "accountName")
    if account and not (queue_uri and table_uri):
        queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
        table_uri = table_uri or f"https://{account}.table.core.windows.net"
    if queue_uri and table_uri:
        return StorageSettings(
            connection_string=None,
            queue_service_uri=queue_uri.rstrip("/"),
            table_service_uri=table_uri.rstrip("/"),
            credential=env.get(prefix + "credential"),
            client_id=env.get(prefix + "clientId"),
        )
    raise SettingsError(
        f"missing required setting {STORAGE_CONNECTION}: give a connection string, or "
        f"{prefix}queueServiceUri and {prefix}tableServiceUri (or {prefix}accountName) for a managed identity"
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise SettingsError naming the first bad one."""
    env = os.environ if env is None else env
    if unresolved := unresolved_key_vault_references(env):
        raise SettingsError(
            f"unresolved Key Vault reference in {', '.join(unresolved)}: grant the app's identity "
            "'get' on the secret (Key Vault Secrets User) and check the reference"
        )
    if unfilled := placeholders(env):
        raise SettingsError(f"placeholder value (<...>) left in {', '.join(unfilled)}: fill in the real value")
    secrets = [_required(env, "CLIENT_STATE_SECRET")]
    previous = _raw(env, "CLIENT_STATE_SECRET_PREVIOUS")
    if previous:
        secrets.append(previous)
    for name, secret in zip(("CLIENT_STATE_SECRET", "CLIENT_STATE_SECRET_PREVIOUS"), secrets, strict=False):
        if len(secret) < MIN_CLIENT_STATE_SECRET:
            raise SettingsError(f"setting {name} must be at least {MIN_CLIENT_STATE_SECRET} characters long")
    try:
        default_consent = Consent.parse(
            _bool(env, "DEFAULT_ENABLED"),
            _required(env, "DEFAULT_SHOW_AS"),
            _required(env, "DEFAULT_SENSITIVITY"),
        )
    except ConsentError as error:
        raise SettingsError(f"setting DEFAULT_SHOW_AS/DEFAULT_SENSITIVITY: {error}") from None
    return Settings(
        storage=_storage(env),
        graph_tenant_id=_required(env, "GRAPH_TENANT_ID").lower(),
        graph_client_id=_required(env, "GRAPH_CLIENT_ID"),
        graph_client_secret=_raw(env, "GRAPH_CLIENT_SECRET"),
        graph_base_url=_graph_url(env),
        notification_url=_url(env, "NOTIFICATION_URL", https_only=True),
        lifecycle_notification_url=_url(env, "LIFECYCLE_NOTIFICATION_URL", https_only=True),
        client_state_secrets=tuple(secrets),
        dime_base_url=_url(env, "DIME_BASE_URL", https_only=True),
        dime_api_key=_required(env, "DIME_API_KEY"),
        sync_days_back=_int(env, "SYNC_DAYS_BACK", 0, 365),
        sync_days_forward=_int(env, "SYNC_DAYS_FORWARD", 1, 365),
        default_consent=default_consent,
        sync_private_details=_bool(env, "SYNC_PRIVATE_DETAILS"),
        retry_max_attempts=_int(env, "RETRY_MAX_ATTEMPTS", 1, 100),
        tombstone_retention_days=_retention(env),
        subscription_lifetime_minutes=_int(env, "SUBSCRIPTION_LIFETIME_MINUTES", 45, 10000),
        renew_within_minutes=_int(env, "RENEW_WITHIN_MINUTES", 1, 10000),
        delete_breaker_share=_share(env, "DELETE_BREAKER_SHARE"),
        dime_event_show_as=_choice(env, "DIME_EVENT_SHOW_AS", ("free", "tentative", "busy", "oof", "workingElsewhere")),
        dime_outlook_edits=_choice(env, "DIME_OUTLOOK_EDITS", ("revert", "keep")),
        dime_outlook_targets=_choice(env, "DIME_OUTLOOK_TARGETS", ("onboarded", "directory")),
        dime_category_time_marker=_bool(env, "DIME_CATEGORY_TIME_MARKER"),
        dime_time_zone=_zone(env, "DIME_TIME_ZONE"),
        dime_source_apps=tuple(a.strip() for a in (_raw(env, "DIME_SOURCE_APPS") or "").split(",") if a.strip()),
        dime_publications_url=_url(env, "DIME_PUBLICATIONS_URL", https_only=True)
        if _raw(env, "DIME_PUBLICATIONS_URL")
        else None,
        dime_webhook_credentials=_credentials(env),
        dime_publications_keys=_publications_keys(env),
        appinsights_resource_id=_resource_id(env, "CONSOLE_APPINSIGHTS_RESOURCE_ID"),
        management_keys=_management_keys(env),
        app_service_auth=(_raw(env, "WEBSITE_AUTH_ENABLED") or "").lower() == "true",
        onboarding_mail_from=_mailbox(env, "ONBOARDING_MAIL_FROM"),
    )


def _retention(env: Mapping[str, str]) -> int:
    """TOMBSTONE_RETENTION_DAYS: a tombstone purged before a late delivery can still arrive would
    let that delivery bring back what was deleted, so the minimum follows RETRY_MAX_ATTEMPTS."""
    from shared.core.retention import MAX_RETENTION_DAYS, minimum_retention_days

    days = _int(env, "TOMBSTONE_RETENTION_DAYS", 1, MAX_RETENTION_DAYS)
    attempts = _int(env, "RETRY_MAX_ATTEMPTS", 1, 100)
    least = minimum_retention_days(attempts)
    if days < least:
        raise SettingsError(
            f"setting TOMBSTONE_RETENTION_DAYS must be at least {least} with RETRY_MAX_ATTEMPTS={attempts} "
            f"(Graph's 4 h of redelivery, 7 days in a queue, then the automatic retries), got {days}"
        )
    return days


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = _required(env, name)
    match = next((a for a in allowed if a.lower() == raw.lower()), None)
    if match is None:
        raise SettingsError(f"setting {name} must be one of {', '.join(allowed)}, got {raw!r}")
    return match


def _zone(env: Mapping[str, str], name: str) -> str:
    """An IANA or Windows zone name, kept as its IANA name. No default: UTC is wrong for most
    tenants, and a wrong zone moves every planner appointment by hours."""
    from shared.core.zones import UnknownZone, canonical_zone

    raw = _required(env, name)
    try:
        return canonical_zone(raw)
    except UnknownZone as error:
        raise SettingsError(
            f"setting {name} must be Dime.Scheduler's time zone, an IANA name such as Europe/Brussels or a Windows "
            f"name such as Romance Standard Time ({error})"
        ) from None


def _publications_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """DIME_PUBLICATIONS_KEY (required: the publications routes are anonymous to the host, so
    without it anyone could post), then DIME_PUBLICATIONS_KEY_PREVIOUS during a rotation."""
    keys = [_required(env, "DIME_PUBLICATIONS_KEY")]
    previous = _raw(env, "DIME_PUBLICATIONS_KEY_PREVIOUS")
    if previous:
        keys.append(previous)
    return _url_safe_keys(("DIME_PUBLICATIONS_KEY", "DIME_PUBLICATIONS_KEY_PREVIOUS"), keys)


def _mailbox(env: Mapping[str, str], name: str) -> str | None:
    """A mailbox named by UPN (name@domain) or object id, or None when unset."""
    raw = _raw(env, name)
    if raw is None:
        return None
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", raw):
        raise SettingsError(f"setting {name} must be a mailbox's user principal name (name@domain) or object id")
    return raw


def _management_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """MANAGEMENT_KEY, then MANAGEMENT_KEY_PREVIOUS during a rotation. Optional: without it the
    management routes open only to a signed-in Connector.Admin (closed, never open). A previous key
    alone is refused: a rotation keeps a current one."""
    current, previous = _raw(env, "MANAGEMENT_KEY"), _raw(env, "MANAGEMENT_KEY_PREVIOUS")
    if previous and not current:
        raise SettingsError("setting MANAGEMENT_KEY_PREVIOUS is set without MANAGEMENT_KEY: set the new key too")
    keys = [k for k in (current, previous) if k]
    return _url_safe_keys(("MANAGEMENT_KEY", "MANAGEMENT_KEY_PREVIOUS"), keys)


def _url_safe_keys(names: tuple[str, str], keys: list[str]) -> tuple[str, ...]:
    """Keys that travel in ?code= (the current one, then the previous during a rotation): long
    enough to guess no faster than a brute force, and nothing a URL would mangle."""
    from shared.core.dime_to_outlook.publications_key import MIN_KEY_LENGTH

    for name, key in zip(names, keys, strict=False):
        if len(key) < MIN_KEY_LENGTH:
            raise SettingsError(f"setting {name} must be at least {MIN_KEY_LENGTH} characters long")
        if any(c.isspace() or c in "&#?%+" for c in key):
            raise SettingsError(
                f"setting {name} must be URL-safe (letters, digits, - and _; e.g. openssl rand -hex 32)"
            )
    return tuple(keys)


def _credentials(env: Mapping[str, str]) -> tuple[str, str] | None:
    user, password = _raw(env, "DIME_WEBHOOK_USERNAME"), _raw(env, "DIME_WEBHOOK_PASSWORD")
    if bool(user) != bool(password):
        raise SettingsError("settings DIME_WEBHOOK_USERNAME and DIME_WEBHOOK_PASSWORD go together: set both or neither")
    if user and password and len(password) < 16:
        raise SettingsError("setting DIME_WEBHOOK_PASSWORD must be at least 16 characters long")
    return (user, password) if user and password else None
