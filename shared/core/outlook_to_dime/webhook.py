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
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_BODY_BYTES = 1024 * 1024
# Graph batches a few notifications per POST; anything far beyond that is not Graph. The cap bounds
# the work a forged POST can cost (every item is at most one HMAC) and is refused as a whole (413).
MAX_ITEMS = 1000
# We hold one subscription per mailbox; during a recreation (a key rotation, a lost create answer)
# two. Items naming a third or later distinct id of the same mailbox in one POST are dropped unread:
# the clientState names the mailbox before any lookup, so a caller who has seen one clientState
# cannot make a POST cost more than two table reads per mailbox (1,000 random ids cost 1,015 before).
MAX_SUBSCRIPTIONS_PER_MAILBOX = 2
BEYOND_CAP_REASON = f"subscription beyond the first {MAX_SUBSCRIPTIONS_PER_MAILBOX} of its mailbox"
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
# Our own lifecycle-queue message (never accepted from Graph): delete a stray subscription.
STRAY_EVENT = "strayed"

# The documented spellings of `resource` (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks and
# docs/verification.md), matched case-insensitively:
#   Users/{guid}/Events/{id}    users/{guid}@{tenant-guid}/events/{id}    Users('{guid}')/Events('{id}')
_RESOURCE = re.compile(
    r"^/?users(?:/(?P<m1>[^/@()']+)(?:@[^/()']+)?|\('(?P<m2>[^/@()']+)(?:@[^/()']+)?'\))"
    r"/events(?:/(?P<e1>[^()']+)|\('(?P<e2>[^()']+)'\))$",
    re.IGNORECASE,
)
_MAX_FIELD = 2048
# Event ids are base64 (standard or URL alphabet): nothing else may reach a key or a Graph path
# (no ".", "..", control characters or separators beyond "/", which keys encode).
_EVENT_ID = re.compile(r"^[A-Za-z0-9+/=_-]{1,512}$")
# Mailbox object ids are GUIDs; the clientState carries one in front of its HMAC.
_MAILBOX_ID = re.compile(r"^[0-9a-f-]{1,64}$")
_STATE_SEPARATOR = "."
_SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class MalformedBody(ValueError):
    """The POST as a whole is unusable (the reason is safe to return to the caller)."""


class TooManyItems(MalformedBody):
    """More items than Graph ever sends in one POST (413)."""


def client_state_for(mailbox_id: str, secret: str) -> str:
    """The clientState of a mailbox's subscription: "{mailbox id}.{hex HMAC-SHA256 of it}".

    The mailbox id rides in front so every item, lifecycle items too (which carry no `resource`),
    is verified by one HMAC, without a table read: forged items cost O(1) and touch no state.
    101 characters, within Graph's 128."""
    mailbox = mailbox_id.lower()
    digest = hmac.new(secret.encode("utf-8"), mailbox.encode("utf-8"), hashlib.sha256).hexdigest()
    return mailbox + _STATE_SEPARATOR + digest


def subscription_fingerprint(secret: str, notification_url: str, lifecycle_notification_url: str) -> str:
    """What a subscription was made with: the CLIENT_STATE_SECRET (and clientState format) and
    both notification URLs (they carry the function key in ?code=), without revealing any of them.
    The renewal timer recreates every subscription whose fingerprint is not the current one: a
    PATCH can change neither the clientState nor the lifecycle URL, so rotating the secret or the
    function key completes on the next renewal run."""
    made_with = "\n".join(("clientState v2", notification_url, lifecycle_notification_url))
    return hmac.new(secret.encode("utf-8"), made_with.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def verified_mailbox(client_state: str, secrets: tuple[str, ...]) -> str | None:
    """The mailbox a clientState proves, or None. Constant time in the secrets (no early exit)."""
    mailbox, separator, _ = client_state.rpartition(_STATE_SEPARATOR)
    if not separator or not _MAILBOX_ID.match(mailbox):
        return None
    candidate = client_state.encode("utf-8")
    valid = False
    for secret in secrets:
        valid |= hmac.compare_digest(client_state_for(mailbox, secret).encode("ascii"), candidate)
    return mailbox if valid else None


def client_state_is_valid(mailbox_id: str, client_state: str, secrets: tuple[str, ...]) -> bool:
    """Whether the clientState proves exactly this mailbox (current or, during rotation, previous key)."""
    return verified_mailbox(client_state, secrets) == mailbox_id.lower()


def parse_resource(resource: str | None) -> tuple[str, str] | None:
    """(mailbox id, event id) from any documented spelling of a notification's `resource`."""
    match = _RESOURCE.match(resource or "")
    if match is None:
        return None
    mailbox = (match.group("m1") or match.group("m2")).lower()
    return mailbox, match.group("e1") or match.group("e2")


def is_valid_event_id(event_id: str) -> bool:
    return bool(_EVENT_ID.match(event_id))


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
    """What one POST carried: verified items, and the dropped ones counted by reason (for one log line)."""

    changes: list[ChangeNotification] = field(default_factory=list)
    lifecycle: list[LifecycleNotification] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)

    def cap_subscriptions_per_mailbox(self, limit: int = MAX_SUBSCRIPTIONS_PER_MAILBOX) -> None:
        """Keep only the items of the first `limit` distinct subscription ids of each mailbox (in
        the POST's order); the others are counted under one reason, never looked up."""
        first: dict[str, list[str]] = {}

        def within(subscription_id: str, mailbox_id: str) -> bool:
            ids = first.setdefault(mailbox_id, [])
            if subscription_id in ids:
                return True
            if len(ids) < limit:
                ids.append(subscription_id)
                return True
            self.rejected[BEYOND_CAP_REASON] += 1
            return False

        # One pass over both kinds in arrival order would need the original positions; changes and
        # lifecycle items arrive on different URLs (notificationUrl, lifecycleNotificationUrl), so
        # a POST holds one kind in practice and changes-then-lifecycle is as good as any order.
        self.changes = [c for c in self.changes if within(c.subscription_id, c.mailbox_id)]
        self.lifecycle = [item for item in self.lifecycle if within(item.subscription_id, item.mailbox_id)]

    def subscription_ids(self) -> set[str]:
        return {c.subscription_id for c in self.changes} | {item.subscription_id for item in self.lifecycle}

    def keep_owned(self, owner_of: Mapping[str, str | None]) -> set[tuple[str, str]]:
        """Keep the items whose subscription id the table holds for their mailbox; drop the others.

        Returns the strays, as (subscription id, mailbox id): ids the table holds for no mailbox at
        all, which Graph holds for this one (a lost create answer, a duplicate) and which are to be
        deleted. An id held for *another* mailbox is dropped but never a stray: deleting it would
        let anyone holding one mailbox's clientState stop another person's subscription."""
        strays: set[tuple[str, str]] = set()

        def owned(subscription_id: str, mailbox_id: str) -> bool:
            owner = owner_of.get(subscription_id)
            if owner == mailbox_id:
                return True
            if owner is None:
                if _SUBSCRIPTION_ID.match(subscription_id):  # Graph's ids are GUIDs: nothing else to delete
                    strays.add((subscription_id, mailbox_id))
                self.rejected["subscription unknown to the table"] += 1
            else:
                self.rejected["subscription of another mailbox"] += 1
            return False

        self.changes = [c for c in self.changes if owned(c.subscription_id, c.mailbox_id)]
        self.lifecycle = [item for item in self.lifecycle if owned(item.subscription_id, item.mailbox_id)]
        return strays


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
    if len(document["value"]) > MAX_ITEMS:
        raise TooManyItems(f"more than {MAX_ITEMS} items in one POST")
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


def verify_item(
    item: Any, tenant_id: str, secrets: tuple[str, ...], states: dict[str, str | None] | None = None
) -> ChangeNotification | LifecycleNotification | str:
    """A verified notification, or the reason (for the log) why the item was dropped.

    Pure and O(1): the tenant, then one HMAC (the clientState names and proves its mailbox), then
    the shape. Whether the subscription id is ours for that mailbox is the caller's (one table
    read per distinct subscription id, only for items that passed this). `states`: the verdicts
    on clientStates already checked in this POST (its items mostly share one), so each distinct
    clientState costs one HMAC per POST; it lives only as long as the POST."""
    if not isinstance(item, dict):
        return "item is not an object"
    tenant = _text(item, "tenantId")
    if tenant is None or not hmac.compare_digest(tenant.lower().encode(), tenant_id.lower().encode()):
        return "foreign or missing tenant"
    subscription_id = _text(item, "subscriptionId")
    client_state = _text(item, "clientState")
    if subscription_id is None or client_state is None:
        return "missing subscriptionId or clientState"
    if states is None:
        mailbox = verified_mailbox(client_state, secrets)
    elif client_state in states:
        mailbox = states[client_state]
    else:
        mailbox = states[client_state] = verified_mailbox(client_state, secrets)
    if mailbox is None:
        return "bad clientState"

    if "lifecycleEvent" in item:
        # Lifecycle items carry no resource: the clientState names the mailbox, the table confirms.
        lifecycle_event = _text(item, "lifecycleEvent")
        if lifecycle_event not in LIFECYCLE_EVENTS:
            return "unknown lifecycle event"
        expiration = _text(item, "subscriptionExpirationDateTime")
        return LifecycleNotification(mailbox, subscription_id, lifecycle_event, expiration)

    change_type = _text(item, "changeType")
    resource_data = item.get("resourceData")
    if change_type not in CHANGE_TYPES or not isinstance(resource_data, dict):
        return "missing changeType or resourceData"
    parsed = parse_resource(_text(item, "resource")) or parse_resource(_text(resource_data, "@odata.id"))
    event_id = _text(resource_data, "id")
    if parsed is None or event_id is None:
        return "missing resource or event id"
    if parsed[0] != mailbox:
        return "resource of another mailbox than the clientState"
    if parsed[1] != event_id:
        return "resourceData.id disagrees with the resource"
    if not is_valid_event_id(event_id):
        return "event id outside the allowed characters or length"
    etag = _text(resource_data, "@odata.etag")
    return ChangeNotification(mailbox, event_id, change_type, etag_to_change_key(etag), subscription_id)


def parse_notifications(body: bytes, tenant_id: str, secrets: tuple[str, ...]) -> ParsedNotifications:
    """Split a POST into verified change and lifecycle notifications; MalformedBody if unusable.

    Lifecycle items are de-duplicated (one per subscription and event): a flood of `missed` is
    one message, not thousands. At most MAX_SUBSCRIPTIONS_PER_MAILBOX distinct subscription ids
    per mailbox survive, so the caller's lookups are bounded by the mailboxes proven in the POST."""
    parsed = ParsedNotifications()
    seen_lifecycle: set[tuple[str, str]] = set()
    states: dict[str, str | None] = {}  # this POST's clientState verdicts (at most one per item)
    for item in parse_body(body):
        outcome = verify_item(item, tenant_id, secrets, states)
        if isinstance(outcome, ChangeNotification):
            parsed.changes.append(outcome)
        elif isinstance(outcome, LifecycleNotification):
            key = (outcome.subscription_id, outcome.lifecycle_event)
            if key in seen_lifecycle:
                parsed.rejected["duplicate lifecycle item"] += 1
            else:
                seen_lifecycle.add(key)
                parsed.lifecycle.append(outcome)
        else:
            parsed.rejected[outcome] += 1
    parsed.cap_subscriptions_per_mailbox()
    return parsed
