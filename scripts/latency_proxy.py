"""A loopback delaying proxy: the real services' latencies in front of the fakes and Azurite.

The fakes and Azurite answer in about a millisecond; Graph, Dime.Scheduler and Azure Storage answer
in 8–250 ms. A design that overlaps its waits and one that does not look the same at 1 ms and very
different at 250 ms, so `make bench` measures both: each request to an upstream goes through one of
these proxies, which classifies it (`classify`), sleeps the profile's delay for that class, then
forwards it unchanged (method, path, query, headers and body bytes, both ways, streamed) and streams
the answer back. The proxy only delays: it bounds no concurrency (connection pools without limit,
one coroutine per request), keeps connections alive both sides, and rewrites no body.

Graph's delay is the one exception to "waits, then forwards": Graph counts a request against a
mailbox's 4 concurrent requests for as long as it serves it, so the proxy forwards at once with the
delay in a header (`GRAPH_SERVICE_TIME_HEADER`), and FakeGraph spends it while the request holds its
mailbox's slots. A client that sends a busy mailbox more than 4 requests at once then meets the
429 MailboxConcurrency real Graph answers (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits),
where a delay spent here, before the fake's 1 ms of work, would hide it.

One proxy per upstream (Graph, Dime.Scheduler, the Table and the Queue endpoint of Azurite), all in
one process of their own (so their CPU is not the measured app's):

    python -m scripts.latency_proxy --profile realistic graph=http://127.0.0.1:5001 table=http://127.0.0.1:5002
    -> prints one JSON line {"graph": "http://127.0.0.1:<port>", "table": ...}, serves until stdin closes

`LatencyProxies` starts that process from Python. The profiles' figures and where they come from
are in the README (Performance); `PROFILES` is the one place they are written in code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SERVICES = ("graph", "dime", "table", "queue")

GRAPH_SERVICE_TIME_HEADER = "X-Fake-Service-Seconds"  # tests/fakes/graph/base.py: SERVICE_TIME_HEADER

# Request classes, one delay each in a profile.
GRAPH_GET = "graph GET"
GRAPH_BATCH = "graph $batch"
GRAPH_WRITE = "graph write"
DIME_IMPORT = "dime /import"
DIME_OTHER = "dime other"
TABLE_POINT = "table point operation or query"
TABLE_BATCH = "table entity-group transaction"
QUEUE_OP = "queue operation"
CLASSES = (GRAPH_GET, GRAPH_BATCH, GRAPH_WRITE, DIME_IMPORT, DIME_OTHER, TABLE_POINT, TABLE_BATCH, QUEUE_OP)


@dataclass(frozen=True)
class Profile:
    """Seconds to wait before forwarding, per request class."""

    name: str
    delays: Mapping[str, float]

    def delay(self, request_class: str) -> float:
        return self.delays[request_class]


PROFILES: dict[str, Profile] = {
    "loopback": Profile("loopback", dict.fromkeys(CLASSES, 0.0)),
    # Sources and which figures are estimates: README, "Performance".
    "realistic": Profile(
        "realistic",
        {
            GRAPH_GET: 0.100,
            GRAPH_BATCH: 0.250,
            GRAPH_WRITE: 0.150,
            DIME_IMPORT: 0.150,
            DIME_OTHER: 0.100,
            TABLE_POINT: 0.008,
            TABLE_BATCH: 0.015,
            QUEUE_OP: 0.008,
        },
    ),
}


def classify(service: str, method: str, path: str) -> str:
    """The request class of one request to `service` (graph, dime, table or queue).

    `path` is the request target's path (no query). Graph: `POST .../$batch` is a JSON batch; GET
    (and HEAD) a read; anything else a write. Dime.Scheduler: the `/import` endpoint (the SDK's
    bulk write) or anything else. Table storage: an entity-group transaction is a `POST` to
    `/<account>/$batch`; every other call is a point operation or a query. Queue: every call.
    """
    method = method.upper()
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    if service == "graph":
        if tail == "$batch" and method == "POST":
            return GRAPH_BATCH
        return GRAPH_GET if method in ("GET", "HEAD") else GRAPH_WRITE
    if service == "dime":
        return DIME_IMPORT if tail.lower() == "import" else DIME_OTHER
    if service == "table":
        return TABLE_BATCH if tail == "$batch" and method == "POST" else TABLE_POINT
    if service == "queue":
        return QUEUE_OP
    raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")


# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's: never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"}
)


async def serve(profile: Profile, upstreams: Mapping[str, str]) -> tuple[dict[str, str], Any]:
    """Start one proxy per (service, upstream origin) on a free loopback port; returns their origins
    and a coroutine function that stops them all."""
    import aiohttp
    from aiohttp import web
    from yarl import URL

    # limit=0: no cap on connections, so the proxy never queues a request the app sent concurrently.
    # keepalive_timeout: an idle upstream connection is dropped before Azurite's server closes it
    # (Node's keepAliveTimeout, 5 s in Azurite: DEFAULT_TABLE_KEEP_ALIVE_TIMEOUT); aiohttp's default
    # 15 s reused connections Azurite had closed, and the request failed with "Connection reset by
    # peer" whenever many connections had opened at once and then sat idle (a fanned-out bulk retry).
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False, keepalive_timeout=4.0),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )
    runners: list[web.BaseRunner] = []
    origins: dict[str, str] = {}

    def handler_for(service: str, upstream: str) -> Any:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            delay = profile.delay(classify(service, request.method, request.path))
            headers = [
                (name, value)
                for name, value in request.headers.items()
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("host", "transfer-encoding")
            ]
            if service == "graph":  # FakeGraph spends it holding the mailbox's slots (see the docstring)
                headers.append((GRAPH_SERVICE_TIME_HEADER, f"{delay:.3f}"))
            else:
                await asyncio.sleep(delay)
            has_body = request.can_read_body
            async with session.request(
                request.method,
                URL(upstream + request.raw_path, encoded=True),  # the target's bytes as sent (signatures)
                headers=headers,
                data=request.content if has_body else None,
                allow_redirects=False,
                compress=None,
            ) as answer:
                response = web.StreamResponse(status=answer.status, reason=answer.reason)
                for name, value in answer.raw_headers:
                    decoded = name.decode("latin-1")
                    if decoded.lower() in HOP_BY_HOP or decoded.lower() == "transfer-encoding":
                        continue
                    response.headers.add(decoded, value.decode("latin-1"))
                await response.prepare(request)
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response

        return handle

    for service, upstream in upstreams.items():
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        runner = web.ServerRunner(web.Server(handler_for(service, upstream.rstrip("/"))), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        origins[service] = f"http://127.0.0.1:{port}"
        runners.append(runner)

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()
        await session.close()

    return origins, stop


async def _main(profile: Profile, upstreams: dict[str, str]) -> None:
    origins, stop = await serve(profile, upstreams)
    print(json.dumps(origins), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin (or exits)
    await stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="realistic")
    parser.add_argument("upstreams", nargs="+", metavar="service=origin", help=f"service: {', '.join(SERVICES)}")
    args = parser.parse_args(argv)
    upstreams = dict(pair.split("=", 1) for pair in args.upstreams)
    asyncio.run(_main(PROFILES[args.profile], upstreams))


class LatencyProxies:
    """The proxy process, from Python: ``with LatencyProxies("realistic", {"graph": url}) as p: p.urls``."""

    def __init__(self, profile: str, upstreams: Mapping[str, str]) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
        self.profile = profile
        self.upstreams = dict(upstreams)
        self.urls: dict[str, str] = {}
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> LatencyProxies:
        args = [f"{service}={origin}" for service, origin in self.upstreams.items()]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scripts.latency_proxy", "--profile", self.profile, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise RuntimeError(f"the latency proxy did not start (exit {self.process.returncode})")
        self.urls = json.loads(line)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> LatencyProxies:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class RoutedStorage:
    """Azurite as the app sees it behind the proxies: the connection string names the proxies'
    Table and Queue endpoints; `process` is still Azurite's own (its CPU is measured there)."""

    connection_string: str
    process: Any
    proxy_pid: int | None = None  # the proxies' process (its CPU is measured apart from the app's)


def _endpoints(connection_string: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)


def _origin_and_path(url: str) -> tuple[str, str]:
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}", "/" + path if path else ""


@contextmanager
def routed(profile: str, azurite: Any, **fakes: Any) -> Iterator[Any]:
    """Route the app's storage and the given fakes (``graph=``, ``dime=``) through proxies of
    `profile`; yields what to hand to settings_env in place of `azurite` (the fakes' ``base_url``
    names their proxy while inside). Under ``loopback`` nothing stands between (a proxy that does
    not delay would only add its own cost); BENCH_PROXY_LOOPBACK=1 puts zero-delay proxies there."""
    if profile == "loopback" and not os.environ.get("BENCH_PROXY_LOOPBACK"):
        yield azurite
        return
    endpoints = _endpoints(azurite.connection_string)
    table_origin, table_path = _origin_and_path(endpoints["TableEndpoint"])
    queue_origin, queue_path = _origin_and_path(endpoints["QueueEndpoint"])
    upstreams = {"table": table_origin, "queue": queue_origin}
    upstreams.update({service: fake.own_origin for service, fake in fakes.items()})
    with LatencyProxies(profile, upstreams) as proxies:
        for service, fake in fakes.items():
            fake.public_origin = proxies.urls[service]
        endpoints["TableEndpoint"] = proxies.urls["table"] + table_path
        endpoints["QueueEndpoint"] = proxies.urls["queue"] + queue_path
        try:
            connection = ";".join(f"{k}={v}" for k, v in endpoints.items()) + ";"
            yield RoutedStorage(connection, azurite.process, proxies.pid)
        finally:
            for fake in fakes.values():
                fake.public_origin = None


if __name__ == "__main__":
    main()
