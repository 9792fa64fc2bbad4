"""The asynchronous Dime.Scheduler client sends exactly what the vendor SDK sends.

Both clients' requests are captured at the transport (pytest-httpx intercepts the sync and the
async httpx transports alike) for the same calls, and compared byte for byte: method, URL,
headers, body. Then the same answers must give the same results and the same SyncErrors.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from shared.adapters.dime import DimeGateway
from shared.adapters.dime_async import AsyncDimeGateway
from shared.core.transactions import ErrorCode, SyncError

BASE = "https://dime.example.test/api"
KEY = "key-0123"
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("run_import", ([{"appointment": {"Subject": "Zoë ✓", "Start": "2026-12-07T08:00:00Z", "n": 1.5}}],)),
    ("list_resources", ()),
    ("get_appointment", ("id with/slash",)),
    ("list_appointments", ("2026-12-01T00:00:00Z", "2026-12-31T00:00:00Z", ["R 1", "R/2"])),
    ("create_hook", ("appointment-created", {"url": "https://x.test/h?code=a&b=1", "name": None})),
    ("delete_hook", ("appointment-created", "hook/1")),
]


def sent(request: httpx.Request) -> tuple[str, str, dict[str, str], bytes]:
    return request.method, str(request.url), dict(request.headers), request.read()


def both(calls: list[tuple[str, tuple[Any, ...]]], **options: Any) -> tuple[list[Any], list[Any]]:
    """Each call through the sync gateway, then through the async one: their results (or errors)."""
    sync = DimeGateway(BASE, KEY, **options)
    results_sync = [_outcome(lambda n=name, a=args: getattr(sync, n)(*a)) for name, args in calls]

    async def main() -> list[Any]:
        client = AsyncDimeGateway(BASE, KEY, **options)
        outcomes = []
        for name, args in calls:
            try:
                outcomes.append(await getattr(client, name)(*args))
            except SyncError as error:
                outcomes.append((error.code, error.message, error.retry_after))
        await client.close()
        return outcomes

    return results_sync, asyncio.run(main())


def _outcome(call: Any) -> Any:
    try:
        return call()
    except SyncError as error:
        return (error.code, error.message, error.retry_after)


def test_every_request_is_the_sdks_byte_for_byte(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={"statusCode": 200, "content": '{"Success": true}'}, is_reusable=True)
    results_sync, results_async = both(CALLS, max_retries=0)
    requests = [sent(r) for r in httpx_mock.get_requests()]
    assert len(requests) == 2 * len(CALLS)
    assert requests[: len(CALLS)] == requests[len(CALLS) :]
    assert requests[0][2]["x-api-key"] == KEY and requests[0][0] == "POST" and requests[0][1] == f"{BASE}/import"
    assert results_sync == results_async


@pytest.mark.parametrize(
    ("status", "headers", "body", "code"),
    [
        (429, {"Retry-After": "7"}, {"title": "slow down"}, ErrorCode.DIME_THROTTLED),
        (401, {}, None, ErrorCode.DIME_AUTH_FAILED),
        (400, {}, {"Error": "bad field"}, ErrorCode.DIME_REJECTED),
        (200, {}, {"statusCode": 500, "content": '{"Error":"deadlock"}'}, None),
    ],
)
def test_failures_are_classified_alike(
    httpx_mock: HTTPXMock, status: int, headers: dict[str, str], body: Any, code: ErrorCode | None
) -> None:
    httpx_mock.add_response(status_code=status, headers=headers, json=body, is_reusable=True)
    results_sync, results_async = both(CALLS[:1], max_retries=0)
    assert results_sync == results_async
    assert isinstance(results_async[0], tuple)  # a SyncError each time
    if code is not None:
        assert results_async[0][0] is code


def test_a_404_appointment_is_none_and_a_transport_failure_unavailable(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/appointment/1", status_code=404, json={"title": "gone"}, is_reusable=True)
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{BASE}/resource", is_reusable=True)
    results_sync, results_async = both([("get_appointment", ("1",)), ("list_resources", ())], max_retries=0)
    assert results_sync == results_async
    assert results_async[0] is None and results_async[1][0] is ErrorCode.DIME_UNAVAILABLE


def test_retries_follow_the_sdks_policy(httpx_mock: HTTPXMock) -> None:
    """A 503 with Retry-After 0, then a success: both clients send twice and succeed."""
    for _ in range(2):
        httpx_mock.add_response(status_code=503, headers={"Retry-After": "0"})
        httpx_mock.add_response(json={"statusCode": 200, "content": "{}"})
    results_sync, results_async = both(CALLS[:1], max_retries=2)
    assert results_sync == results_async == [{}]
    requests = [sent(r) for r in httpx_mock.get_requests()]
    assert len(requests) == 4 and requests[0] == requests[1] == requests[2] == requests[3]
