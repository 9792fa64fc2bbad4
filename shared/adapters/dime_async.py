"""Dime.Scheduler on the event loop: the vendor SDK's requests, sent by `httpx.AsyncClient`.

Why: the `dimescheduler` SDK is synchronous (an `httpx.Client`), so every `/import` used to take a
thread of a 6-thread pool (issue 20). This client sends exactly what the SDK sends, so nothing on
the wire changes (tests/integration/test_dime_async.py pins it by capturing both):

* the SDK's host (`environment.value`), headers (`X-API-KEY`, its `User-Agent`) and timeout
  (dimescheduler/client.py);
* its request shapes: a JSON body via httpx's `json=`, params without None values
  (dimescheduler/dispatcher.py `Dispatcher.request`), the accessors' paths
  (`imports.run` = POST /import, `appointments.get_by_id` = GET /appointment/{quoted id});
* its retries: the same statuses and transport errors, Retry-After honoured and capped, full-jitter
  backoff; the delays are computed by the SDK's own `RetryTransport` (dimescheduler/retry.py), only
  the waiting is `asyncio.sleep`;
* its reading of the answer (`Result`: JSON when the content type says so), then the sync
  gateway's classification (`checked`, `classify_http`, `_inner_content`): the same SyncErrors.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Unpack
from urllib.parse import quote

import httpx

from shared.adapters.dime import DimeOptions, RetryPolicy, _inner_content, checked, unreachable
from shared.adapters.request_meter import count_dime
from shared.core.transactions import SyncError


class _AsyncRetryTransport(httpx.AsyncBaseTransport):
    """`dimescheduler.retry.RetryTransport` for an async transport: its policy, asyncio's sleep."""

    def __init__(self, policy: Any, inner: httpx.AsyncBaseTransport) -> None:
        self._policy = policy  # a RetryTransport: its config and its delay computations
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        config = self._policy._config
        for attempt in range(config.max_retries + 1):
            try:
                response = await self._inner.handle_async_request(request)
            except self._policy._RETRYABLE_EXCEPTIONS:
                if attempt == config.max_retries:
                    raise
                await asyncio.sleep(self._policy._compute_backoff(attempt))
                continue
            if attempt == config.max_retries or response.status_code not in config.retry_status_codes:
                return response
            await response.aread()  # drained so the connection can be reused
            await response.aclose()
            await asyncio.sleep(self._policy._delay_for(response, attempt))
        raise RuntimeError("retry loop exited without a result")  # unreachable: the last attempt returns

    async def aclose(self) -> None:
        await self._inner.aclose()


class AsyncDimeGateway:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **policy: Unpack[RetryPolicy],
    ) -> None:
        from dimescheduler.client import USER_AGENT
        from dimescheduler.retry import RetryTransport

        if not api_key:
            raise ValueError("api_key is required")  # as the SDK's client says
        options = DimeOptions(base_url, api_key, **policy)
        inner = transport or httpx.AsyncHTTPTransport()
        if (config := options.retry_config()) is not None:
            inner = _AsyncRetryTransport(RetryTransport(config=config, inner=httpx.MockTransport(_never)), inner)
        self._http = httpx.AsyncClient(
            base_url=options.host,
            headers={"X-API-KEY": api_key, "User-Agent": USER_AGENT},
            timeout=options.timeout_seconds,
            transport=inner,
        )

    @classmethod
    def like(cls, options: DimeOptions) -> AsyncDimeGateway:
        """Built as a sync gateway was (its `options`)."""
        return cls(**asdict(options))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        absent: int | None = None,
    ) -> Any:
        """One request as the SDK's Dispatcher sends it; its `Result` when it succeeded, None for
        an `absent` status, SyncError otherwise."""
        from dimescheduler.dispatcher import _drop_none, _parse_json
        from dimescheduler.result import Result

        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body
        if params is not None:
            kwargs["params"] = _drop_none(params)
        count_dime()
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise unreachable(error) from None
        payload = _parse_json(response)
        ok = response.is_success
        return checked(Result(data=payload if ok else None, error=None if ok else payload, response=response), absent)

    async def run_import(self, calls: list[dict[str, object]]) -> dict[str, Any]:
        """POST /import; the decoded inner content on success, SyncError otherwise."""
        result = await self._send("POST", "/import", body=calls)
        return _inner_content(result.data)

    async def list_resources(self) -> Any:
        """GET /resource: resourceNo, email, exchangeIntegrationEnabled of every resource."""
        return (await self._send("GET", "/resource")).data

    async def get_appointment(self, appointment_id: str) -> Any | None:
        """GET /appointment/{id} (the SDK's `appointments.get_by_id`); None when Dime.Scheduler answers 404."""
        result = await self._send("GET", f"/appointment/{quote(appointment_id, safe='')}", absent=404)
        return None if result is None else result.data

    async def list_appointments(self, start: str, end: str, resources: list[str]) -> Any:
        """GET /appointment?startDate&endDate&resources=R1&resources=R2."""
        params = {"startDate": start, "endDate": end, "resources": resources}
        return (await self._send("GET", "/appointment", params=params)).data

    async def create_hook(self, hook_type: str, body: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """POST /webhooks/<type>: the answer's body and headers."""
        result = await self._send("POST", f"/webhooks/{hook_type}", body=body)
        return result.data, dict(result.response.headers)

    async def delete_hook(self, hook_type: str, hook_id: str) -> None:
        try:
            await self._send("DELETE", f"/webhooks/{hook_type}/{quote(hook_id, safe='')}")
        except SyncError as error:
            if "(404)" not in error.message:
                raise

    async def close(self) -> None:
        await self._http.aclose()


def _never(request: httpx.Request) -> httpx.Response:
    """The sync RetryTransport's inner transport, never used (only its policy is): it needs one."""
    raise RuntimeError("the async Dime.Scheduler client sends through its own transport")
