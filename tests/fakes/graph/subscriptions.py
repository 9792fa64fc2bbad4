"""Subscriptions and notifications of ``FakeGraph``."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from .._http import Request, Response
from .base import GraphBase
from .common import (
    CHANGE_TYPES,
    LIFECYCLE_EVENTS,
    MAX_SUBSCRIPTION_MINUTES,
    MIN_SUBSCRIPTION_MINUTES,
    Delivery,
    GraphError,
    _Outgoing,
    _Subscription,
    format_offset,
    format_utc,
    parse_datetime,
    parse_prefer,
)


class SubscriptionsMixin(GraphBase):
    """Subscriptions (REST and helpers) and the change/lifecycle notifications sent to receivers.

    Behaviour, per Microsoft Learn (https://learn.microsoft.com/graph/api/subscription-post-subscriptions,
    https://learn.microsoft.com/graph/api/resources/subscription,
    https://learn.microsoft.com/graph/change-notifications-delivery-webhooks,
    https://learn.microsoft.com/graph/change-notifications-lifecycle-events); each option below is an instance
    attribute tests may set:

    * No 409 for a duplicate Outlook subscription: every create gets its own id even for the same
      resource and URLs (https://learn.microsoft.com/graph/api/subscription-post-subscriptions: no 409 is documented
      for Outlook
      resources; the 409 wording of one revision came from another workload). Both live subscriptions notify.
    * At ``subscriptions_per_mailbox`` (1,000, all apps together) a create answers 429
      ``SubscriptionCountReached`` with an absurd Retry-After
      (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits: 1,000 subscriptions per mailbox).
    * An expiry beyond ``max_subscription_minutes`` answers 400 "Subscription expiration can only be
      N minutes in the future" on create and renewal (https://learn.microsoft.com/graph/api/resources/subscription
      documents 10,080 minutes for events; services
      answered 10070, docs/verification.md).
    * ``lose_create_answers``: that many creates succeed at Graph but answer 504 (the answer is
      lost): the subscription lives on, a stray for the caller (lost create answers and the SDK's own
      POST retries, https://github.com/microsoft/kiota-http-python RetryHandler, leave duplicates).
    * ``resource_spelling``: which documented spelling of ``resource`` notifications carry:
      "path" ``Users/{id}/Events/{id}``, "tenant" ``users/{id}@{tenant}/events/{id}``, "odata"
      ``Users('{id}')/Events('{id}')``, or "rotate" (each notification the next one).
    * Lifecycle notifications carry **no** ``resource`` and no ``resourceData`` (https://learn.microsoft.com/graph/change-notifications-lifecycle-events).
    * ``GET /subscriptions/{id}`` answers 200 with the subscription object, 404 once it is gone
      (Microsoft Learn, "Get subscription", learn.microsoft.com/graph/api/subscription-get:
      "If successful, this method returns a 200 OK response code and subscription object").
      Whether a GET right after Graph removed a subscription may still answer 200 (a read lagging
      behind the removal) is unverified: ``removed_subscription_reads`` = N plays it, the next N
      GETs of each removed subscription answering its last state (docs/verification.md).
    """

    resource_spelling = "path"
    subscriptions_per_mailbox = 1000
    max_subscription_minutes = MAX_SUBSCRIPTION_MINUTES
    lose_create_answers = 0
    removed_subscription_reads = 0
    _spelling_turn = 0
    _removed_reads: dict[str, tuple[dict[str, Any], int]] | None = None

    # ---------------------------------------------------------------- subscriptions (REST)
    def _route_subscriptions(self, request: Request, rest: list[str]) -> Response:
        method = request.method
        if not rest:
            if method == "POST":
                return self._create_subscription(request)
            if method == "GET":
                with self._lock:
                    self._purge_expired()
                    value = [copy.deepcopy(s.json) for s in self._subscriptions.values()]
                return Response(200, {"@odata.context": f"{self.base_url}/$metadata#subscriptions", "value": value})
        elif len(rest) == 1:
            if method == "GET":
                with self._lock:
                    lagging = self._lagging_read(rest[0])
                    if lagging is not None:
                        return Response(200, lagging)
                    return Response(200, copy.deepcopy(self._subscription_or_404(rest[0]).json))
            if method == "PATCH":
                return self._patch_subscription(request, rest[0])
            if method == "DELETE":
                with self._lock:
                    self._subscription_or_404(rest[0])
                    del self._subscriptions[rest[0]]
                return Response(204)
        elif len(rest) == 2 and rest[1].lower() == "reauthorize" and method == "POST":
            with self._lock:
                self._subscription_or_404(rest[0]).reauthorizations += 1
            return Response(204)
        raise GraphError(405, "MethodNotAllowed", "Method not allowed.")

    def _forget_subscription(self, sub_id: str) -> None:
        """Remove it; with ``removed_subscription_reads`` its GETs lag behind. Caller holds the lock."""
        sub = self._subscriptions.pop(sub_id, None)
        if sub is not None and self.removed_subscription_reads > 0:
            if self._removed_reads is None:
                self._removed_reads = {}
            self._removed_reads[sub_id] = (copy.deepcopy(sub.json), self.removed_subscription_reads)

    def _lagging_read(self, sub_id: str) -> dict[str, Any] | None:
        if not self._removed_reads or sub_id not in self._removed_reads or sub_id in self._subscriptions:
            return None
        state, left = self._removed_reads[sub_id]
        if left <= 1:
            del self._removed_reads[sub_id]
        else:
            self._removed_reads[sub_id] = (state, left - 1)
        return copy.deepcopy(state)

    def _purge_expired(self) -> None:
        """Graph deletes subscriptions once they expire."""
        now = self._clock()
        for sid, sub in list(self._subscriptions.items()):
            if parse_datetime(sub.json["expirationDateTime"]) <= now:
                del self._subscriptions[sid]

    def _subscription_or_404(self, sub_id: str) -> _Subscription:
        self._purge_expired()
        sub = self._subscriptions.get(sub_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription Id '{sub_id}'.")
        return sub

    def _expiration(self, value: Any) -> datetime:
        try:
            when = parse_datetime(str(value))
        except (ValueError, KeyError):
            raise GraphError(400, "InvalidRequest", "expirationDateTime is not a valid date-time.") from None
        now = self._clock()
        if when <= now:
            raise GraphError(400, "InvalidRequest", "Subscription expiration can only be in the future.")
        if when > now + timedelta(minutes=self.max_subscription_minutes):
            raise GraphError(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be {self.max_subscription_minutes} minutes in the future.",
            )
        return max(when, now + timedelta(minutes=MIN_SUBSCRIPTION_MINUTES))

    def _resource_mailbox(self, resource: str) -> str:
        parts = [p for p in resource.strip().split("/") if p]
        low = [p.lower() for p in parts]
        if (
            len(parts) in (3, 4)
            and low[0] == "users"
            and low[-1] == "events"
            and (len(parts) == 3 or low[2] == "calendar")
        ):
            user = self._find_user(parts[1])
            if user is None:
                raise GraphError(
                    400,
                    "ExtensionError",
                    "Operation: Create; Exception: [Status Code: NotFound; Reason: The mailbox is either "
                    "inactive, soft-deleted, or is hosted on-premise.]",
                )
            return str(user["id"])
        raise GraphError(400, "InvalidRequest", f"Resource '{resource}' is not supported by this fake.")

    def _create_subscription(self, request: Request) -> Response:
        body = request.json
        if not isinstance(body, dict):
            raise GraphError(400, "InvalidRequest", "Empty or invalid payload.")
        for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(required):
                raise GraphError(400, "InvalidRequest", f"Required field '{required}' is missing.")
        change_types = frozenset(c.strip() for c in str(body["changeType"]).split(",") if c.strip())
        if not change_types or not change_types <= set(CHANGE_TYPES):
            raise GraphError(400, "InvalidRequest", f"Invalid changeType '{body['changeType']}'.")
        client_state = body.get("clientState")
        if client_state is not None and len(str(client_state)) > 128:
            raise GraphError(400, "InvalidRequest", "clientState can be at most 128 characters.")
        expiration = self._expiration(body["expirationDateTime"])
        with self._lock:
            mailbox = self._resource_mailbox(str(body["resource"]))
            self._check_count(mailbox)
        for url in (body["notificationUrl"], body.get("lifecycleNotificationUrl")):
            if url and not self._validate_endpoint(str(url)):
                raise GraphError(
                    400,
                    "ValidationError",
                    "Subscription validation request failed. Notification endpoint must respond with "
                    "200 OK to validation request.",
                )
        with self._lock:
            self._check_count(mailbox)
            sub_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            sub_json = {
                "@odata.context": f"{self.base_url}/$metadata#subscriptions/$entity",
                "id": sub_id,
                "resource": body["resource"],
                "applicationId": self.application_id,
                "changeType": body["changeType"],
                "clientState": client_state,
                "notificationUrl": body["notificationUrl"],
                "notificationQueryOptions": None,
                "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
                "expirationDateTime": format_utc(expiration),
                "creatorId": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                "includeResourceData": False,
                "latestSupportedTlsVersion": "v1_2",
                "encryptionCertificate": None,
                "encryptionCertificateId": None,
                "notificationUrlAppId": None,
            }
            immutable = parse_prefer(request.headers).get("idtype", "").lower() == "immutableid"
            self._subscriptions[sub_id] = _Subscription(sub_json, mailbox, change_types, immutable)
            if self.lose_create_answers > 0:
                self.lose_create_answers -= 1
                raise GraphError(504, "GatewayTimeout", "The answer to this create was lost.")
            return Response(201, copy.deepcopy(sub_json))

    def _check_count(self, mailbox: str) -> None:
        """No 409 for duplicates (https://learn.microsoft.com/graph/api/subscription-post-subscriptions); only the
        per-mailbox limit refuses a create."""
        self._purge_expired()
        if sum(1 for sub in self._subscriptions.values() if sub.mailbox == mailbox) >= self.subscriptions_per_mailbox:
            raise GraphError(
                429,
                "SubscriptionCountReached",
                "Maximum number of subscriptions for this mailbox has been reached.",
                {"Retry-After": "31536000"},
            )

    def _validation_token(self) -> str:
        """Opaque, hostile-looking: spaces, '+', '/', '<', non-ASCII (receivers must decode and
        echo it as text/plain, never as HTML)."""
        rid = uuid.UUID(int=self._rng.getrandbits(128), version=4)
        return f"Validation: Testing client application reachability for subscription Request-Id: {rid} a+b/c <i>é✓</i>"

    def _validate_endpoint(self, url: str) -> bool:
        token = self._validation_token()
        sep = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
        target = f"{url}{sep}validationToken={quote(token, safe='')}"
        status = 0
        ok = False
        try:
            resp = httpx.post(target, content=b"", timeout=self.validation_timeout)
            status = resp.status_code
            ctype = resp.headers.get("content-type", "").lower()
            ok = status == 200 and ctype.startswith("text/plain") and resp.text == token
        except httpx.HTTPError:
            ok = False
        with self._lock:
            self.deliveries.append(Delivery("validation", target, token, status))
        return ok

    def _patch_subscription(self, request: Request, sub_id: str) -> Response:
        body = request.json
        if not isinstance(body, dict) or not body.get("expirationDateTime"):
            raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
        expiration = self._expiration(body["expirationDateTime"])
        with self._lock:
            sub = self._subscription_or_404(sub_id)
            sub.json["expirationDateTime"] = format_utc(expiration)
            return Response(200, copy.deepcopy(sub.json))

    # ---------------------------------------------------------------- subscriptions (helpers)
    def subscriptions(self) -> list[dict[str, Any]]:
        """Live subscriptions as Graph returns them (copies)."""
        with self._lock:
            self._purge_expired()
            return [copy.deepcopy(s.json) for s in self._subscriptions.values()]

    def subscription_used_immutable_ids(self, subscription_id: str) -> bool:
        """Whether the create request carried ``Prefer: IdType="ImmutableId"``."""
        with self._lock:
            return self._subscriptions[subscription_id].immutable_ids

    def subscription_reauthorizations(self, subscription_id: str) -> int:
        with self._lock:
            return self._subscriptions[subscription_id].reauthorizations

    def remove_subscription(self, subscription_id: str) -> None:
        """Graph dropped it (no lifecycle notification; see ``send_lifecycle`` for that)."""
        with self._lock:
            self._forget_subscription(subscription_id)

    # ---------------------------------------------------------------- notifications out
    def _resource(self, mailbox: str, event_id: str) -> str:
        spellings = {
            "path": f"Users/{mailbox}/Events/{event_id}",
            "tenant": f"users/{mailbox}@{self.tenant_id}/events/{event_id}",
            "odata": f"Users('{mailbox}')/Events('{event_id}')",
        }
        if self.resource_spelling == "rotate":
            self._spelling_turn += 1
            return list(spellings.values())[self._spelling_turn % len(spellings)]
        return spellings[self.resource_spelling]

    def _notification(self, sub: _Subscription, event_id: str, change_type: str, etag: str | None) -> dict[str, Any]:
        resource = self._resource(sub.mailbox, event_id)
        data: dict[str, Any] = {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource}
        if etag is not None:
            data["@odata.etag"] = etag
        data["id"] = event_id
        note: dict[str, Any] = {
            "subscriptionId": sub.json["id"],
            "subscriptionExpirationDateTime": format_offset(parse_datetime(sub.json["expirationDateTime"])),
            "changeType": change_type,
            "resource": resource,
            "resourceData": data,
            "tenantId": self.tenant_id,
        }
        if sub.json.get("clientState") is not None:
            note["clientState"] = sub.json["clientState"]
        return note

    def _targets(self, mailbox: str, event_id: str, change_type: str) -> list[_Outgoing]:
        """Notifications for one change, one per matching subscription. Caller holds the lock."""
        self._purge_expired()
        ev = self._events.get(mailbox, {}).get(event_id)
        etag = f'W/"{ev.data["changeKey"]}"' if ev is not None and change_type != "deleted" else None
        return [
            _Outgoing(str(sub.json["notificationUrl"]), self._notification(sub, event_id, change_type, etag))
            for sub in self._subscriptions.values()
            if sub.mailbox == mailbox and change_type in sub.change_types
        ]

    def _changed(self, mailbox: str, event_id: str, change_type: str) -> None:
        """Hook called under the lock on every change: queue auto-notifications."""
        if not self.auto_notify:
            return
        if self.notify_drop_rate > 0 and self._notify_rng.random() < self.notify_drop_rate:
            return
        for out in self._targets(mailbox, event_id, change_type):
            for _ in range(max(1, self.notify_duplicates)):
                self._outbox.append(_Outgoing(out.url, copy.deepcopy(out.notification)))

    def pending_notifications(self) -> list[dict[str, Any]]:
        """What ``flush_notifications`` would send (copies, unshuffled)."""
        with self._lock:
            return [copy.deepcopy(o.notification) for o in self._outbox]

    def notify(self, mailbox_id: str, event_id: str, change_type: str) -> list[int]:
        """Send one change notification now to every matching subscription (exactly once each,
        bypassing duplicates/drops). Returns the receivers' HTTP statuses (0 = unreachable)."""
        if change_type not in CHANGE_TYPES:
            raise ValueError(change_type)
        with self._lock:
            targets = self._targets(self._mailbox_or_key_error(mailbox_id), event_id, change_type)
        return [self._post("notification", o.url, {"value": [o.notification]}) for o in targets]

    def flush_notifications(self) -> list[int]:
        """Send everything in the outbox now (shuffled if ``notify_reorder``; grouped per URL in
        POSTs of ``notify_batch_size``). Returns the HTTP statuses, one per POST."""
        with self._lock:
            pending, self._outbox = self._outbox, []
            if self.notify_reorder:
                self._notify_rng.shuffle(pending)
            size = max(1, self.notify_batch_size)
        posts: list[tuple[str, list[dict[str, Any]]]] = []
        for out in pending:
            if posts and posts[-1][0] == out.url and len(posts[-1][1]) < size:
                posts[-1][1].append(out.notification)
            else:
                posts.append((out.url, [out.notification]))
        return [self._post("notification", url, {"value": notes}) for url, notes in posts]

    def send_lifecycle(self, subscription_id: str, event: str) -> int:
        """Post a lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``,
        ``missed``) to the subscription's lifecycleNotificationUrl. ``subscriptionRemoved`` also
        removes the subscription, as Graph does. Returns the receiver's status."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(event)
        with self._lock:
            sub = self._subscriptions[subscription_id]
            url = sub.json.get("lifecycleNotificationUrl")
            if not url:
                raise ValueError(f"subscription {subscription_id} has no lifecycleNotificationUrl")
            note: dict[str, Any] = {
                "subscriptionId": subscription_id,
                "subscriptionExpirationDateTime": format_offset(parse_datetime(sub.json["expirationDateTime"])),
                "tenantId": self.tenant_id,
                "organizationId": self.tenant_id,
                "clientState": sub.json.get("clientState"),
                "lifecycleEvent": event,
            }  # no resource, no resourceData (https://learn.microsoft.com/graph/change-notifications-lifecycle-events)
            if event == "subscriptionRemoved":
                self._forget_subscription(subscription_id)
        return self._post("lifecycle", str(url), {"value": [note]})

    def _post(self, kind: str, url: str, payload: Any) -> int:
        """POST JSON to a receiver with Graph's 10 s timeout; never raises."""
        try:
            status = httpx.post(url, json=payload, timeout=10.0).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.deliveries.append(Delivery(kind, url, payload, status))
        return status
