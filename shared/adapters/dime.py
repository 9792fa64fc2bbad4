"""Dime.Scheduler's `/import` endpoint through the official `dimescheduler` SDK.

The SDK gives us the API key header and retries of 408/429/5xx that honour Retry-After. What it
does not know is the import envelope: an HTTP 200 whose inner `statusCode` is not 200 is a
failure, and we turn every failure into a SyncError with a stable code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypedDict, Unpack

import httpx

from shared.adapters.request_meter import count_dime
from shared.core.envelope import classify_failure, content_failure, get_ci, has_ci, sql_error_number
from shared.core.transactions import ErrorCode, SyncError


def _sent(send: Callable[[], Any], absent: int | None = None) -> Any:
    """One SDK call (its own retries honour Retry-After); transport failures and non-2xx answers
    become the stable SyncErrors every caller handles (an `absent` status: None instead)."""
    count_dime()
    try:
        result = send()
    except httpx.TransportError as error:  # a timeout included
        raise unreachable(error) from None
    return checked(result, absent)


def unreachable(error: httpx.TransportError) -> SyncError:
    """A transport failure (no answer) as the SyncError every caller handles: retried later."""
    if isinstance(error, httpx.TimeoutException):
        return SyncError(ErrorCode.DIME_UNAVAILABLE, "Dime.Scheduler timed out")
    return SyncError(ErrorCode.DIME_UNAVAILABLE, f"Dime.Scheduler unreachable: {type(error).__name__}")


def checked(result: Any, absent: int | None = None) -> Any:
    """An SDK `Result` that is a success, None for an `absent` status, a SyncError otherwise
    (shared with the asynchronous client, dime_async.py)."""
    if not result.ok:
        response = result.response
        if absent is not None and response.status_code == absent:
            return None
        raise classify_http(response.status_code, response.headers.get("retry-after"), result.error)
    return result


class RetryPolicy(TypedDict, total=False):
    """How a gateway retries and waits (the SDK's `RetryConfig` and timeout); unset: the defaults."""

    max_retries: int
    max_delay_seconds: float
    timeout_seconds: float


@dataclass(frozen=True)
class DimeOptions:
    """One description of how both gateways reach Dime.Scheduler (this one, and dime_async.py's, which
    is built from the sync gateway's `options` so that a test's or a script's choice holds for both):
    the host, the key, the SDK's retry policy and timeout."""

    base_url: str
    api_key: str
    max_retries: int = 3
    max_delay_seconds: float = 30.0
    timeout_seconds: float = 30.0

    @property
    def host(self) -> str:
        """The host as the SDK uses it (`environment.value`)."""
        return self.base_url.rstrip("/")

    def retry_config(self) -> Any:
        """The SDK's `RetryConfig`, or None when retries are off (`max_retries` 0)."""
        from dimescheduler import RetryConfig

        if not self.max_retries:
            return None
        return RetryConfig(max_retries=self.max_retries, max_delay_s=self.max_delay_seconds)


class DimeGateway:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        **policy: Unpack[RetryPolicy],
    ) -> None:
        from dimescheduler import DimeSchedulerClient

        self.options = DimeOptions(base_url, api_key, **policy)
        # The SDK takes its host from an Environment enum of the three public hosts; anything
        # with a `.value` works, which is how self-hosted installations and tests are reached.
        environment: Any = SimpleNamespace(value=self.options.host)
        retry = self.options.retry_config() or False
        self._client = DimeSchedulerClient(
            api_key, environment, timeout=self.options.timeout_seconds, retry=retry, transport=transport
        )

    def run_import(self, calls: list[dict[str, object]]) -> dict[str, Any]:
        """POST /import; the decoded inner content on success, SyncError otherwise."""
        result = _sent(lambda: self._client.imports.run(calls))
        return _inner_content(result.data)

    # Reads and hook registration for the Dime.Scheduler → Outlook direction ------------------

    def _call(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._request(method, path, body=body, params=params)[0]

    def _request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, str]]:
        """One REST call through the SDK's own client (API key header, retries honouring
        Retry-After); the decoded JSON on 2xx, SyncError otherwise. The SDK has no accessor for
        /webhooks, so all of these go through its dispatcher."""
        from dimescheduler.dispatcher import Dispatcher

        result = _sent(lambda: Dispatcher(self._client._http).request(method, path, body=body, params=params))
        return result.data, dict(result.response.headers)

    def list_resources(self) -> Any:
        """GET /resource: resourceNo, email, exchangeIntegrationEnabled of every resource."""
        return self._call("GET", "/resource")

    def get_appointment(self, appointment_id: str) -> Any | None:
        """GET /appointment/{id} (the vendor's Python SDK, `appointments.get_by_id`): the appointment
        by Dime.Scheduler's internal id, in a shape that is unverified (parse it tolerantly); None
        when Dime.Scheduler answers 404 (no such appointment, or deleted)."""
        result = _sent(lambda: self._client.appointments.get_by_id(appointment_id), absent=404)
        return None if result is None else result.data

    def list_appointments(self, start: str, end: str, resources: list[str]) -> Any:
        """GET /appointment?startDate&endDate&resources=R1&resources=R2 (the answer's shape is unverified)."""
        return self._call("GET", "/appointment", params={"startDate": start, "endDate": end, "resources": resources})

    def create_hook(self, hook_type: str, body: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """POST /webhooks/<type>: the answer's body and headers (where the id is, is unverified)."""
        return self._request("POST", f"/webhooks/{hook_type}", body=body)

    def delete_hook(self, hook_type: str, hook_id: str) -> None:
        from urllib.parse import quote

        try:
            self._call("DELETE", f"/webhooks/{hook_type}/{quote(hook_id, safe='')}")
        except SyncError as error:
            if "(404)" not in error.message:
                raise

    def close(self) -> None:
        self._client.close()


def classify_http(status: int, retry_after: str | None, body: Any) -> SyncError:
    """A non-2xx answer as a SyncError, classified by its status and any SQL error number or code
    its body states (classify_failure), never by a word of its message."""
    detail = _describe(body)
    code = classify_failure(status, body)
    if code is ErrorCode.DIME_THROTTLED:
        return SyncError(code, f"Dime.Scheduler throttled the import{detail}", _seconds(retry_after))
    if code is ErrorCode.DIME_AUTH_FAILED:
        return SyncError(code, f"Dime.Scheduler refused the API key ({status})")
    if code is ErrorCode.DIME_UNAVAILABLE:
        return SyncError(code, f"Dime.Scheduler failed ({status}{_sql(body)}){detail}", _seconds(retry_after))
    if code is ErrorCode.DIME_RESOURCE_UNKNOWN:
        return SyncError(code, f"Dime.Scheduler does not know the resource ({status}){detail}")
    return SyncError(ErrorCode.DIME_REJECTED, f"Dime.Scheduler rejected the import ({status}){detail}")


def _sql(body: Any) -> str:
    number = sql_error_number(body)
    return f", SQL error {number}" if number is not None else ""


def _inner_content(envelope: Any) -> dict[str, Any]:
    """Unwrap {"content": "<json>", "statusCode": 200} (keys read case-insensitively, as the
    vendor's .NET SDK does); some answers are the content itself. A 200 whose inner status is not
    200, or whose content says ``"Success": false`` or carries a non-empty ``Error``, is a failure.
    The SDK checks HTTP and the inner status
    (https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Endpoints/Base/Endpoint.cs,
    https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Import/Response/ImportResponse.cs);
    the content's own failure marks are checked here as well, as observed (docs/verification.md)."""
    if not isinstance(envelope, dict):
        raise SyncError(ErrorCode.DIME_UNAVAILABLE, "Dime.Scheduler answered without a JSON envelope")
    if not has_ci(envelope, "statusCode") and not has_ci(envelope, "content"):
        content: Any = envelope
        inner: Any = 200
    else:
        content = get_ci(envelope, "content")
        inner = get_ci(envelope, "statusCode")
    if isinstance(content, str):
        try:
            content = json.loads(content) if content else {}
        except json.JSONDecodeError:
            content = {"Description": content[:500]}
    if isinstance(inner, str) and inner.strip().isdigit():
        inner = int(inner)
    if inner != 200 or content_failure(content) is not None:
        status = inner if isinstance(inner, int) and not isinstance(inner, bool) else 0
        failure = content_failure(content)
        detail = _describe(content) or (f": {failure}" if failure else "")
        code = classify_failure(None if inner == 200 else status, content)
        where = f"({inner}{_sql(content)})"
        if code is ErrorCode.DIME_RESOURCE_UNKNOWN:
            raise SyncError(code, f"Dime.Scheduler does not know the resource {where}{detail}")
        if code is ErrorCode.DIME_UNAVAILABLE:
            # Retried (visible as a failed transaction meanwhile): a deadlock, a 5xx, or a failure
            # the answer does not classify.
            raise SyncError(code, f"Dime.Scheduler import failed inside a 200 {where}{detail}")
        raise SyncError(code, f"Dime.Scheduler rejected the import {where}{detail}")
    return content if isinstance(content, dict) else {}


def _describe(body: Any) -> str:
    if isinstance(body, dict):
        names = ("Error", "Description", "Message", "title")
        parts = [str(get_ci(body, k)) for k in names if get_ci(body, k) not in (None, "", [], {})]
        if parts:
            return ": " + "; ".join(parts)[:500]
    return ""


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
