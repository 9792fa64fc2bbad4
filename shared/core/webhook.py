"""Parsing and verifying Graph change notifications, without any I/O.

Graph posts at-least-once, from many subscriptions, and anyone on the internet can post to the
URL, so every item is verified on its own: the tenant, and a clientState derived from the
mailbox id (HMAC), compared in constant time. Invalid items are dropped; the caller only learns
how many, never which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BODY_BYTES = 1024 * 1024
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})

# "Users/{user-id}/Events/{event-id}" (Graph's casing varies: match case-insensitively).
_RESOURCE = re.compile(r"^/?users/(?P<mailbox>[^/]+)/events/(?P<event>.+)$", re.IGNORECASE)
_USER_RESOURCE = re.compile(r"^/?users/(?P<mailbox>[^/]+)(?:/|$)", re.IGNORECASE)
_MAX_FIELD = 2048


class MalformedBody(ValueError):
    """The POST as a whole is unusable (the reason is safe to return to the caller)."""


def client_state_for(mailbox_id: str, secret: str) -> str:
    """The clientState of a mailbox's subscription: hex HMAC-SHA256 of its object id."""
    return hmac.new(secret.encode("utf-8"), mailbox_id.lower().encode("utf-8"), hashlib.sha256).hexdigest()


def secret_fingerprint(secret: str) -> str:
    """Names which CLIENT_STATE_SECRET a subscription was created under, without revealing it,
    so the renewal timer can recreate subscriptions after a key rotation (PATCH cannot change a
    subscription's clientState)."""
    return hmac.new(secret.encode("utf-8"), b"clientState key id", hashlib.sha256).hexdigest()[:16]


def client_state_is_valid(mailbox_id: str, client_state: str, secrets: tuple[str, ...]) -> bool:
    """Constant-time check against the current and (during rotation) previous secret."""
    candidate = client_state.encode("utf-8")
    valid = False
    for secret in secrets:  # no early exit: every secret is always compared
        valid |= hmac.compare_digest(client_state_for(mailbox_id, secret).encode("ascii"), candidate)
    return valid


def etag_to_change_key(etag: str | None) -> str | None:
    """Graph sends the changeKey as a weak etag: W/"<changeKey>"."""
    if not etag:
        return None
    value = etag.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


@dataclass(frozen=True)
class ChangeNotification:
    """One verified "this event may have changed"; becomes one queue message."""

    mailbox_id: str
    event_id: str
    change_type: str
    change_key: str | None
    subscription_id: str

    def to_message(self) -> dict[str, Any]:
        return {
            "mailboxId": self.mailbox_id,
            "eventId": self.event_id,
            "changeType": self.change_type,
            "changeKey": self.change_key,
            "subscriptionId": self.subscription_id,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ChangeNotification:
        return cls(
            mailbox_id=str(message["mailboxId"]),
            event_id=str(message["eventId"]),
            change_type=str(message["changeType"]),
            change_key=message.get("changeKey"),
            subscription_id=str(message.get("subscriptionId") or ""),
        )


@dataclass(frozen=True)
class LifecycleNotification:
    mailbox_id: str
    subscription_id: str
    lifecycle_event: str
    expiration: str | None

    def to_message(self) -> dict[str, Any]:
        return {
            "mailboxId": self.mailbox_id,
            "subscriptionId": self.subscription_id,
            "lifecycleEvent": self.lifecycle_event,
            "subscriptionExpirationDateTime": self.expiration,
        }


@dataclass
class ParsedNotifications:
    changes: list[ChangeNotification] = field(default_factory=list)
    lifecycle: list[LifecycleNotification] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # reasons, for the log only


def parse_body(body: bytes) -> list[Any]:
    """The `value` list of a notification POST, or MalformedBody with a reason."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedBody("body too large")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, too many digits, too deep
        raise MalformedBody("body is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise MalformedBody('body must be a JSON object with a "value" list')
    return document["value"]


def _text(item: dict[str, Any], key: str) -> str | None:
    """A non-empty, bounded, encodable string field (lone surrogates are hostile input)."""
    value = item.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_FIELD:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _mailbox_from_resource(resource: str | None, pattern: re.Pattern[str]) -> str | None:
    match = pattern.match(resource or "")
    return match.group("mailbox").lower() if match else None


MailboxLookup = Callable[[str], "str | None"]


def verify_item(
    item: Any, tenant_id: str, secrets: tuple[str, ...], mailbox_of_subscription: MailboxLookup | None = None
) -> ChangeNotification | LifecycleNotification | str:
    """A verified notification, or the reason (for the log) why the item was dropped.

    Lifecycle items may come without a `resource`; then the mailbox is looked up by subscription
    id (a table read) before the clientState can be checked.
    """
    if not isinstance(item, dict):
        return "item is not an object"
    tenant = _text(item, "tenantId")
    if tenant is None or not hmac.compare_digest(tenant.lower().encode(), tenant_id.lower().encode()):
        return "foreign or missing tenant"
    subscription_id = _text(item, "subscriptionId")
    client_state = _text(item, "clientState")
    if subscription_id is None or client_state is None:
        return "missing subscriptionId or clientState"

    lifecycle_event = _text(item, "lifecycleEvent")
    if "lifecycleEvent" in item:
        mailbox = _mailbox_from_resource(_text(item, "resource"), _USER_RESOURCE)
        if mailbox is None and mailbox_of_subscription is not None:
            mailbox = mailbox_of_subscription(subscription_id)
        if lifecycle_event not in LIFECYCLE_EVENTS or mailbox is None:
            return "unknown lifecycle event or missing resource"
        if not client_state_is_valid(mailbox, client_state, secrets):
            return "bad clientState"
        expiration = _text(item, "subscriptionExpirationDateTime")
        return LifecycleNotification(mailbox, subscription_id, lifecycle_event, expiration)

    change_type = _text(item, "changeType")
    resource_data = item.get("resourceData")
    if change_type not in CHANGE_TYPES or not isinstance(resource_data, dict):
        return "missing changeType or resourceData"
    match = _RESOURCE.match(_text(item, "resource") or "") or _RESOURCE.match(_text(resource_data, "@odata.id") or "")
    event_id = _text(resource_data, "id")
    if match is None or event_id is None:
        return "missing resource or event id"
    mailbox = match.group("mailbox").lower()
    if not client_state_is_valid(mailbox, client_state, secrets):
        return "bad clientState"
    etag = _text(resource_data, "@odata.etag")
    return ChangeNotification(mailbox, event_id, change_type, etag_to_change_key(etag), subscription_id)


def parse_notifications(
    body: bytes, tenant_id: str, secrets: tuple[str, ...], mailbox_of_subscription: MailboxLookup | None = None
) -> ParsedNotifications:
    """Split a POST into verified change and lifecycle notifications; MalformedBody if unusable."""
    parsed = ParsedNotifications()
    for item in parse_body(body):
        outcome = verify_item(item, tenant_id, secrets, mailbox_of_subscription)
        if isinstance(outcome, ChangeNotification):
            parsed.changes.append(outcome)
        elif isinstance(outcome, LifecycleNotification):
            parsed.lifecycle.append(outcome)
        else:
            parsed.rejected.append(outcome)
    return parsed
