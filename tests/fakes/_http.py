"""Shared plumbing for the fake services: a loopback HTTP server and fault injection.

Why real HTTP servers rather than mocked transports: the fakes must exercise everything the
production code does on the wire (the SDKs' middleware, URL encoding of ids, headers, retries,
timeouts), and later serve as offline simulators for a demo. A ``ThreadingHTTPServer`` bound to
127.0.0.1 on a free port costs a few milliseconds to start, so every test can have its own.

Only the standard library is used here.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass
class Request:
    """One HTTP request as the fakes see it (already split and decoded).

    ``path`` is percent-decoded *per segment* (see ``segments``), so an id containing an encoded
    '/' (``%2F``) stays one segment; ``path`` itself is the decoded segments re-joined with '/',
    convenient for ``path_contains`` matching and assertions.
    """

    method: str
    raw_target: str
    path: str
    segments: list[str]
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased keys
    body: bytes
    json: Any = None

    @classmethod
    def parse(cls, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Request:
        """Split a request target into decoded path segments and a query dict."""
        split = urlsplit(target)
        raw_segments = [s for s in split.path.split("/") if s != ""]
        segments = [unquote(s) for s in raw_segments]
        query = {k: v for k, v in parse_qsl(split.query, keep_blank_values=True)}
        lowered = {k.lower(): v for k, v in headers.items()}
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                parsed = None
        return cls(
            method=method.upper(),
            raw_target=target,
            path="/" + "/".join(segments),
            segments=segments,
            query=query,
            headers=lowered,
            body=body,
            json=parsed,
        )


@dataclass
class RecordedRequest:
    """What tests assert on: method, decoded path, query, lower-cased headers, JSON body, and the
    request target exactly as sent (to check how a client encoded ids)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw_target: str = ""

    @classmethod
    def of(cls, request: Request) -> RecordedRequest:
        return cls(
            request.method, request.path, dict(request.query), dict(request.headers), request.json, request.raw_target
        )


@dataclass
class Response:
    """A response the fake sends back (or embeds in a ``$batch`` envelope)."""

    status: int
    body: Any = None  # dict/list → JSON; str → text/plain; bytes → as is; None → empty
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.body is None:
            data = b""
        elif isinstance(self.body, bytes):
            data = self.body
        elif isinstance(self.body, str):
            data = self.body.encode("utf-8")
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            data = json.dumps(self.body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        return data, headers


@dataclass
class _FaultRule:
    remaining: int
    status: int
    retry_after: int | None
    path_contains: str | None
    code: str | None
    inner_status: int | None = None


@dataclass
class _DelayRule:
    remaining: int
    seconds: float
    path_contains: str | None


@dataclass
class Fault:
    """A fault chosen for one request: answer ``status`` (or an inner failure) instead of serving."""

    status: int
    retry_after: int | None
    code: str | None
    inner_status: int | None = None


class FaultInjector:
    """Deterministic and random faults, shared by both fakes.

    Rules are consumed in the order they were added; each matching request uses up one count.
    ``path_contains`` is matched against both the decoded path and the raw request target, so a
    test can target either form. Thread-safe: it owns its own lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_FaultRule] = []
        self._delays: list[_DelayRule] = []
        self._rate = 0.0
        self._rate_statuses: tuple[int, ...] = ()
        self._rate_retry_after: int | None = None
        self._rng = random.Random()

    def add_fault(
        self,
        count: int,
        status: int,
        retry_after: int | None,
        path_contains: str | None,
        code: str | None,
        inner_status: int | None = None,
    ) -> None:
        with self._lock:
            self._faults.append(_FaultRule(count, status, retry_after, path_contains, code, inner_status))

    def add_delay(self, seconds: float, count: int, path_contains: str | None) -> None:
        with self._lock:
            self._delays.append(_DelayRule(count, seconds, path_contains))

    def set_rate(self, rate: float, statuses: Iterable[int], seed: int | None, retry_after: int | None) -> None:
        with self._lock:
            self._rate = rate
            self._rate_statuses = tuple(statuses)
            self._rate_retry_after = retry_after
            self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self._rate = 0.0

    @staticmethod
    def _matches(needle: str | None, haystacks: tuple[str, ...]) -> bool:
        return needle is None or any(needle in h for h in haystacks)

    def take_delay(self, *haystacks: str) -> float:
        """Seconds to sleep before serving this request (0 when none). Sleep outside any lock."""
        with self._lock:
            for rule in self._delays:
                if rule.remaining > 0 and self._matches(rule.path_contains, haystacks):
                    rule.remaining -= 1
                    self._delays = [r for r in self._delays if r.remaining > 0]
                    return rule.seconds
        return 0.0

    def take_fault(self, *haystacks: str) -> Fault | None:
        """The fault to answer this request with, if any (explicit rules first, then random)."""
        with self._lock:
            for rule in self._faults:
                if rule.remaining > 0 and self._matches(rule.path_contains, haystacks):
                    rule.remaining -= 1
                    self._faults = [r for r in self._faults if r.remaining > 0]
                    return Fault(rule.status, rule.retry_after, rule.code, rule.inner_status)
            if self._rate > 0 and self._rate_statuses and self._rng.random() < self._rate:
                status = self._rng.choice(self._rate_statuses)
                retry_after = self._rate_retry_after if status in (429, 503, 504) else None
                return Fault(status, retry_after, None)
        return None


class _Handler(BaseHTTPRequestHandler):
    """Reads a whole request, hands it to the owning fake, writes the answer. No logging.

    The answer leaves in one write with Nagle off: headers and body written separately with Nagle
    on meet the client's delayed ACK and stall each response ~40 ms, which would make the fakes,
    not the code under test, what a benchmark measures.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted socket
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():  # repeated headers (e.g. Prefer) are joined
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        started, cpu_started = time.perf_counter(), time.thread_time()
        request = Request.parse(self.command, self.path, headers, body)
        try:
            response = self.server.owner_handle(request)
        except Exception as exc:  # a bug in the fake must not look like a hang
            response = Response(500, {"error": {"code": "FakeInternalError", "message": repr(exc)}})
        data, headers = response.encode()
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        # end_headers() without its flush, then headers and body leave in one write
        self._headers_buffer.append(b"\r\n")
        if data and self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()
        self.server.stats.add(time.perf_counter() - started, time.thread_time() - cpu_started)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


@dataclass
class ServerStats:
    """What serving cost the fake itself: requests, seconds inside the fake (parse, handle, encode;
    injected delays included) and the CPU seconds of that work. A benchmark prints the cost per
    request so that a fake that became the bottleneck shows."""

    requests: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, seconds: float, cpu_seconds: float) -> None:
        with self._lock:
            self.requests += 1
            self.seconds += seconds
            self.cpu_seconds += cpu_seconds

    def snapshot(self) -> tuple[int, float, float]:
        with self._lock:
            return self.requests, self.seconds, self.cpu_seconds


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # several worker processes connect at once

    def __init__(self, owner_handle: Callable[[Request], Response]) -> None:
        self.owner_handle = owner_handle
        self.stats = ServerStats()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeouts under test) is expected; anything else is reported."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class LoopbackServer:
    """Base class: a threaded HTTP server on 127.0.0.1, started and stopped explicitly or by ``with``.

    Subclasses implement ``handle(request) -> Response``; they guard their own state with a lock
    because requests are served concurrently.
    """

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LoopbackServer:
        """Bind a free port and serve in a daemon thread. Idempotent."""
        if self._server is None:
            self._server = _Server(self.handle)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},  # quick shutdown: one server per test
                name=f"{type(self).__name__}-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):  # type: ignore[no-untyped-def] - returns the subclass
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def stats(self) -> ServerStats:
        """Requests served and the time spent serving them (see ``ServerStats``)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.stats

    # The address clients reach the fake at, when something stands in front of it (the bench's
    # delaying proxy, scripts/latency_proxy.py); None: the fake's own. The links a fake hands out
    # (@odata.nextLink, delta links) name it, as a real service's name its public host.
    public_origin: str | None = None

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash), or ``public_origin`` when set."""
        return self.public_origin or f"http://127.0.0.1:{self.port}"

    @property
    def own_origin(self) -> str:
        """Where the fake itself listens, whatever ``public_origin`` says (what a proxy forwards to)."""
        return f"http://127.0.0.1:{self.port}"

    def handle(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def sleep(seconds: float) -> None:
        """Latency injection; a seam so a subclass could make it interruptible."""
        if seconds > 0:
            time.sleep(seconds)
