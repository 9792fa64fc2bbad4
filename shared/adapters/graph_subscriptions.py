"""Graph subscription calls (create, renew, delete, list), mixed into GraphGateway.

Separate from graph.py only to keep that file small; the methods use GraphGateway's client (the
same msgraph request adapter, auth and retry middleware). msgraph is imported lazily here too.
Failures keep Graph's status and message (SubscriptionFailed), because callers act on them: 404 on
renewal means create anew, a 400 may name the allowed lifetime, `SubscriptionCountReached` (429
with an absurd Retry-After) is permanent, and a ValidationError's message tells the administrator
why Graph could not reach the notification URL.

Creates go out with the SDK's retry turned off: Graph never answers 409 to a duplicate Outlook
subscription, so a POST retried after a lost answer (429/503/504) would leave two live ones.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from shared.core.outlook_to_dime.subscriptions import CHANGE_TYPE, subscription_resource
from shared.core.transactions import ErrorCode, SyncError

IMMUTABLE_IDS = 'IdType="ImmutableId"'


class SubscriptionFailed(SyncError):
    """A subscription request Graph refused or could not answer (status 0: unreachable)."""

    def __init__(self, status: int, what: str, graph_code: str = "", graph_message: str = "", retry_after=None):
        self.status = status
        self.graph_code = graph_code
        self.graph_message = graph_message
        detail = f": {graph_code} {graph_message}".rstrip() if (graph_code or graph_message) else ""
        permanent = self.count_reached
        message = f"Graph answered {status or 'nothing'} to the {what}{detail}"
        if permanent:
            message += " (1,000 subscriptions on this mailbox across all apps: delete unused ones)"
        super().__init__(_code(status, permanent), message, None if permanent else retry_after)

    @property
    def count_reached(self) -> bool:
        """The mailbox holds 1,000 subscriptions (all apps): permanent, whatever Retry-After says."""
        return self.status == 429 and self.graph_code.lower() == "subscriptioncountreached"


def _code(status: int, permanent: bool = False) -> ErrorCode:
    if permanent:
        return ErrorCode.GRAPH_REJECTED
    if status == 429:
        return ErrorCode.GRAPH_THROTTLED
    if status in (401, 403):
        return ErrorCode.GRAPH_FORBIDDEN
    if status == 404:
        return ErrorCode.GRAPH_NOT_FOUND
    if status == 0 or status >= 500 or status in (408, 409, 412):
        return ErrorCode.GRAPH_UNAVAILABLE
    return ErrorCode.GRAPH_REJECTED


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


class SubscriptionCalls:
    """Needs `self._graph()` (the GraphServiceClient bound to the running loop)."""

    def _graph(self) -> Any:  # provided by GraphGateway
        raise NotImplementedError

    async def _subscription_call(self, request_info: Any, what: str, *, retry: bool = True) -> dict[str, Any]:
        from kiota_abstractions.api_error import APIError
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        client = self._graph()
        request_info.headers.add("Prefer", IMMUTABLE_IDS)
        if not retry:  # this request only: the client's other requests keep the SDK's retries
            request_info.add_request_options([RetryHandlerOption(max_retries=0, should_retry=False)])
        try:
            raw = await client.request_adapter.send_primitive_async(request_info, "bytes", {"XXX": ODataError})
        except APIError as error:
            status = error.response_status_code or 0
            code = message = ""
            main = getattr(error, "error", None)
            if main is not None:
                code, message = str(main.code or ""), str(main.message or "")
            raise SubscriptionFailed(status, what, code, message, _retry_after(error.response_headers)) from None
        except httpx.TimeoutException:
            raise SubscriptionFailed(0, what, "Timeout", "Graph timed out") from None
        except httpx.TransportError as error:
            raise SubscriptionFailed(0, what, "Unreachable", type(error).__name__) from None
        return json.loads(raw) if raw else {}

    async def create_subscription(
        self,
        object_id: str,
        *,
        notification_url: str,
        lifecycle_notification_url: str,
        expiry: datetime,
        client_state: str,
    ) -> dict[str, Any]:
        """POST /subscriptions for the mailbox's events (Graph validates both URLs first)."""
        from msgraph.generated.models.subscription import Subscription

        body = Subscription(
            change_type=CHANGE_TYPE,
            notification_url=notification_url,
            lifecycle_notification_url=lifecycle_notification_url,
            resource=subscription_resource(object_id),
            expiration_date_time=expiry,
            client_state=client_state,
        )
        info = self._graph().subscriptions.to_post_request_information(body)
        return await self._subscription_call(info, "subscription create", retry=False)

    async def renew_subscription(self, subscription_id: str, expiry: datetime) -> dict[str, Any]:
        """PATCH a new expirationDateTime; SubscriptionFailed(404/400) means: create anew."""
        from msgraph.generated.models.subscription import Subscription

        builder = self._graph().subscriptions.by_subscription_id(subscription_id)
        info = builder.to_patch_request_information(Subscription(expiration_date_time=expiry))
        return await self._subscription_call(info, "subscription renewal")

    async def get_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        """GET /subscriptions/{id} (Microsoft Learn "Get subscription": 200 and the subscription
        object); None when Graph answers 404 (it no longer has it). A lifecycle notification is
        confirmed with this before anything is recreated or renewed."""
        builder = self._graph().subscriptions.by_subscription_id(subscription_id)
        try:
            return await self._subscription_call(builder.to_get_request_information(), "subscription read")
        except SubscriptionFailed as error:
            if error.status == 404:
                return None
            raise

    async def delete_subscription(self, subscription_id: str) -> bool:
        """DELETE; False when Graph no longer had it."""
        builder = self._graph().subscriptions.by_subscription_id(subscription_id)
        try:
            await self._subscription_call(builder.to_delete_request_information(), "subscription delete")
        except SubscriptionFailed as error:
            if error.status == 404:
                return False
            raise
        return True
