"""The delaying proxy (scripts/latency_proxy.py) forwards a request and its answer intact, after at
least its class's delay; and the bench's routing puts Azurite and the fakes behind it for real.

Lower bounds only: a loaded machine may make anything slower, never faster than the delay."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from aiohttp import web

from scripts.latency_proxy import CLASSES, GRAPH_GET, TABLE_BATCH, Profile, routed, serve
from tests.azurite import Azurite
from tests.conftest import make_services, settings_env

BODY = bytes(range(256)) * 4096  # 1 MiB of every byte value: no decoding or re-encoding survives it


async def _echo(request: web.Request) -> web.StreamResponse:
    """Answers what it received: status 207, the body (streamed back in pieces), the method, the
    target as sent and a header, so the test sees what the proxy forwarded."""
    body = await request.read()
    response = web.StreamResponse(status=207, headers={"X-Method": request.method, "X-Target": request.raw_path})
    response.headers["X-Trace"] = request.headers.get("X-Trace", "")
    response.headers["X-Length"] = str(len(body))
    await response.prepare(request)
    for start in range(0, len(body), 65536):
        await response.write(body[start : start + 65536])
    await response.write_eof()
    return response


def test_a_request_arrives_intact_both_ways_after_at_least_its_delay() -> None:
    profile = Profile("test", {**dict.fromkeys(CLASSES, 0.0), TABLE_BATCH: 0.2, GRAPH_GET: 0.0})

    async def scenario() -> None:
        app = web.Application(client_max_size=4 * len(BODY))
        app.router.add_route("*", "/{tail:.*}", _echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        upstream = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        origins, stop = await serve(profile, {"table": upstream})
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                started = time.perf_counter()
                answer = await client.post(
                    f"{origins['table']}/devstoreaccount1/$batch?a=1&b=%2F&c='d'",
                    content=BODY,
                    headers={"X-Trace": "t-1", "Content-Type": "multipart/mixed; boundary=batch_x"},
                )
                elapsed = time.perf_counter() - started
                assert answer.status_code == 207
                assert answer.content == BODY
                assert answer.headers["x-method"] == "POST"
                assert answer.headers["x-target"] == "/devstoreaccount1/$batch?a=1&b=%2F&c='d'"
                assert answer.headers["x-trace"] == "t-1" and answer.headers["x-length"] == str(len(BODY))
                assert elapsed >= 0.2  # the table batch's delay, at least

                # Many at once: the proxy delays each, it does not queue them behind each other.
                started = time.perf_counter()
                answers = await asyncio.gather(
                    *(client.post(f"{origins['table']}/devstoreaccount1/$batch", content=b"x") for _ in range(20))
                )
                assert all(a.status_code == 207 and a.content == b"x" for a in answers)
                assert time.perf_counter() - started >= 0.2
        finally:
            await stop()
            await runner.cleanup()

    asyncio.run(scenario())


def test_the_bench_routes_storage_and_the_fakes_through_the_proxy(azurite: Azurite, graph: Any, dime: Any) -> None:
    """Under the realistic profile the app's storage (signed requests) and Graph work through the
    proxies, Graph's links name the proxy (so paging stays behind it) and a GET waits >= 100 ms."""
    own = graph.base_url
    with routed("realistic", azurite, graph=graph, dime=dime) as storage:
        assert graph.base_url != own and storage.connection_string != azurite.connection_string
        services = make_services(settings_env(storage, graph.base_url, dime.base_url))
        table = services.store.table("proxytest")
        table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "Value": "é" * 100})
        assert table.get_entity("p", "r")["Value"] == "é" * 100
        services.queues.send_raw("proxytest", b"hello")
        person = graph.add_user(mail="proxy@contoso.com")
        with httpx.Client() as client:
            started = time.perf_counter()
            answer = client.get(f"{graph.base_url}/users/{person['id']}", headers={"Authorization": "Bearer t"})
            assert time.perf_counter() - started >= 0.1
        assert answer.status_code == 200 and answer.json()["mail"] == "proxy@contoso.com"
    assert graph.base_url == own  # and afterwards the fake names itself again


def test_graph_counts_a_request_against_its_mailbox_for_the_whole_service_time(
    azurite: Azurite, graph: Any, dime: Any
) -> None:
    """Graph allows 4 concurrent requests per mailbox for as long as it serves them: behind the
    realistic proxy, 8 GETs of one mailbox sent at once meet 429 MailboxConcurrency for the ones
    beyond 4 (a delay spent in the proxy, before the fake's millisecond, let all 8 through)."""
    person = graph.add_user(mail="busy@contoso.com")
    event = graph.create_event(person["id"], subject="Busy", start="2026-11-24T08:00:00", end="2026-11-24T09:00:00")
    with routed("realistic", azurite, graph=graph, dime=dime):
        url = f"{graph.base_url}/users/{person['id']}/events/{event['id']}"

        async def eight() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(*(client.get(url, headers={"Authorization": "Bearer t"}) for _ in range(8)))

        answers = asyncio.run(eight())
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1, statuses
    assert statuses.count(200) <= 4
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "MailboxConcurrency" and refused.headers["Retry-After"]
