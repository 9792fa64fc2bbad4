"""A local runner for function_app: a development aid, not a replacement for Core Tools.

It runs the real function code, unchanged, the way the Functions host would:

* **HTTP**: a loopback ThreadingHTTPServer (an extension of `tests.functions_server`) maps
  `METHOD /api/<route>` to the indexed function whose trigger declares that route and method
  (route parameters such as `{mailbox}` become `req.route_params`). Functions with auth level
  FUNCTION or ADMIN want the runner's key in `?code=` or `x-functions-key`; ANONYMOUS ones do not.
  The management routes are ANONYMOUS to the host and check the app's own MANAGEMENT_KEY (or a
  signed-in principal): `runner.request` sends `runner.management_key` in `x-functions-key`.
* **Queues**: every queue-triggered function is fed from Azurite by `tests.host` (base64
  messages, up to `batchSize` at once, the dequeue count, `<queue>-poison` after
  `maxDequeueCount`), either on demand (`drain()`) or by a background poller (`start_polling()`).
* **Timers**: fired on demand, `runner.fire("retry_failed")`, with `TimerRequest(past_due=False)`.

The app's services are injected by setting `function_app.services = lambda: services`, as the
tests do; `runner.clock` is a clock the services can use, which `advance()` moves forward (so a
failed transaction's backoff can elapse without waiting).

    runner = LocalRunner()
    env = {..., "NOTIFICATION_URL": runner.url("notifications"), ...}
    runner.services = build_services(env, clock=runner.clock)
    with runner:
        runner.request("PUT", "manage/resources/jane@contoso.com", {"showAs": ["busy"]})
        runner.drain()
        runner.fire("retry_failed")

The indexed functions are read once per app object (`app.get_functions()` may be called only
once: it builds and validates the function list) and cached.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import azure.functions as func
import httpx
from azure.functions.timer import TimerRequest

from shared.names import POISON_SUFFIX
from shared.services import Services
from tests.functions_server import FunctionsServer
from tests.host import QueueRun, call_function, run_queue

_INDEX_CACHE: dict[int, list[Any]] = {}


def indexed_functions(app: func.FunctionApp) -> list[Any]:
    """`app.get_functions()`, called once per app object."""
    key = id(app)
    if key not in _INDEX_CACHE:
        functions = list(app.get_functions())
        _INDEX_CACHE[key] = functions
        # Code calling app.get_functions() directly afterwards gets the same list, not an error.
        app.get_functions = lambda: list(functions)  # type: ignore[method-assign]
    return _INDEX_CACHE[key]


@dataclass(frozen=True)
class HttpRoute:
    name: str
    template: str  # e.g. "manage/resources/{mailbox}"
    methods: frozenset[str]
    pattern: re.Pattern[str]
    anonymous: bool
    function: Callable[..., Any]

    @property
    def literal_segments(self) -> int:
        return sum(1 for s in self.template.split("/") if not s.startswith("{"))


def _route_pattern(template: str) -> re.Pattern[str]:
    """The template as a regex; a last segment `{*name}` is a catch-all (may be empty or hold "/")."""
    parts = []
    catch_all = ""
    segments = template.strip("/").split("/")
    tail = re.fullmatch(r"\{\*(\w+)\}", segments[-1])
    if tail:
        segments = segments[:-1]
        catch_all = f"(?:/(?P<{tail.group(1)}>.*))?"
    for segment in segments:
        match = re.fullmatch(r"\{(\w+)(?::[^}]*)?\??\}", segment)
        parts.append(f"(?P<{match.group(1)}>[^/]+)" if match else re.escape(segment))
    return re.compile("^" + "/".join(parts) + catch_all + "$", re.IGNORECASE)


@dataclass
class DrainSummary:
    """What one `drain()` did, per queue."""

    runs: dict[str, QueueRun] = field(default_factory=dict)

    def add(self, queue: str, run: QueueRun) -> None:
        total = self.runs.setdefault(queue, QueueRun())
        total.succeeded += run.succeeded
        total.failed += run.failed
        total.poisoned += run.poisoned
        total.errors += run.errors

    @property
    def handled(self) -> int:
        return sum(r.succeeded + r.failed for r in self.runs.values())


class ShiftableClock:
    """UTC now, plus an offset that `advance()` grows (thread-safe enough: one float)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class _AppServer(FunctionsServer):
    """FunctionsServer routing by the function index instead of a fixed table."""

    def __init__(self, routes: list[HttpRoute], key: str) -> None:
        super().__init__(routes={}, key=key)
        self.http_routes = sorted(routes, key=lambda r: -r.literal_segments)  # literal before {param}

    def resolve(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | str | None:
        """The route and its parameters; "405" if the path exists for other methods; None if none."""
        other_method = False
        for route in self.http_routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if method.upper() not in route.methods:
                other_method = True
                continue
            # The host URL-decodes route parameters (".../resources/ann%40contoso.com" -> "ann@contoso.com").
            return route, {name: unquote(value) if value else value for name, value in match.groupdict().items()}
        return "405" if other_method else None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path.removeprefix("/api/")).strip("/")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        found = self.resolve(handler.command, path)
        if found is None:
            self._answer(handler, 404, b"no such function", "text/plain")
            return
        if found == "405":
            self._answer(handler, 405, b"method not allowed", "text/plain")
            return
        assert not isinstance(found, str)
        route, route_params = found
        keyed = params.get("code") == self.key or handler.headers.get("x-functions-key") == self.key
        if not route.anonymous and not keyed:
            self._answer(handler, 401, b"", "text/plain")
            return
        request = func.HttpRequest(
            method=handler.command,
            url=self.origin + handler.path,
            headers=dict(handler.headers.items()),
            params=params,
            route_params=route_params,
            body=body,
        )
        try:
            response = call_function(route.function, request)
        except Exception as error:  # the host answers 500 when a function raises
            self.calls.append((route.name, 500))
            self._answer(handler, 500, f"{type(error).__name__}: {error}".encode(), "text/plain")
            return
        self.calls.append((route.name, response.status_code))
        mimetype = response.mimetype or "text/plain"
        content_type = f"{mimetype}; charset={response.charset}" if response.charset else mimetype
        handler.send_response(response.status_code)
        answer = response.get_body() or b""
        for name, value in response.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                handler.send_header(name, value)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)


class LocalRunner:
    """Serve, poll and fire function_app's functions against the given services."""

    def __init__(self, services: Services | None = None, *, key: str = "local-key", module: Any = None) -> None:
        """services may be set later (before start()): the settings' NOTIFICATION_URL usually
        needs the runner's port, which `url()` knows as soon as the runner exists."""
        if module is None:
            import function_app as module
        self.module = module
        self.services: Services = services  # type: ignore[assignment]
        self.key = key
        self.http_routes: list[HttpRoute] = []
        self.queues: dict[str, Callable[..., Any]] = {}
        self.timers: dict[str, Callable[..., Any]] = {}
        for function in indexed_functions(module.app):
            trigger = function.get_trigger()
            kind = type(trigger).__name__
            name = function.get_function_name()
            user_function = function.get_user_function()
            if kind == "HttpTrigger":
                methods = frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"]))
                auth = str(getattr(trigger.auth_level, "value", trigger.auth_level) or "function").lower()
                template = trigger.route or name
                self.http_routes.append(
                    HttpRoute(name, template, methods, _route_pattern(template), auth == "anonymous", user_function)
                )
            elif kind == "QueueTrigger":
                self.queues[trigger.queue_name] = user_function
            elif kind == "TimerTrigger":
                self.timers[name] = user_function
        self.server = _AppServer(self.http_routes, key)
        self._poller: threading.Thread | None = None
        self.poller_error: BaseException | None = None  # set when the poller thread died
        self._polling = threading.Event()
        self._drain_lock = threading.Lock()
        self.drained = DrainSummary()  # everything the poller (and drain()) handled
        self.env: dict[str, str] = {}  # the settings, when built by runner_for
        self._client = httpx.Client(timeout=30.0)
        self.clock = ShiftableClock()

    # -------------------------------------------------------------- lifecycle
    def start(self) -> LocalRunner:
        if self.services is None:
            raise RuntimeError("set runner.services before start()")
        self._previous_services = self.module.services
        self.module.services = lambda: self.services
        self.server.start()
        return self

    def stop(self) -> None:
        self.stop_polling()
        self.server.stop()
        self._client.close()
        if self._previous_services is not None:
            self.module.services = self._previous_services

    def __enter__(self) -> LocalRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- HTTP
    @property
    def origin(self) -> str:
        return self.server.origin

    def url(self, route: str, **params: str) -> str:
        """Public URL of an HTTP function, with the key in ?code= (as Graph is given it)."""
        query = urlencode({"code": self.key, **params})
        return f"{self.origin}/api/{route.strip('/')}?{query}"

    @property
    def management_key(self) -> str:
        """The app's MANAGEMENT_KEY (what an administrator reads from the app setting or Key Vault)."""
        keys = self.services.settings.management_keys
        return keys[0] if keys else ""

    def request(
        self, method: str, route: str, body: Any = None, headers: dict[str, str] | None = None, **params: str
    ) -> tuple[int, Any]:
        """Call an HTTP function over real HTTP; returns (status, decoded JSON or text). The host key
        rides in ?code= and the management key in x-functions-key (each route takes its own)."""
        content = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
        sent = {"x-functions-key": self.management_key, **(headers or {})}
        response = self._client.request(method, self.url(route, **params), content=content, headers=sent)
        text = response.text
        if response.headers.get("content-type", "").startswith("application/json") and text:
            return response.status_code, json.loads(text)
        return response.status_code, text

    # -------------------------------------------------------------- timers
    def fire(self, name: str) -> Any:
        """Run a timer function now, as the host does on schedule."""
        if name not in self.timers:
            raise KeyError(f"no timer function {name!r}; indexed: {', '.join(sorted(self.timers))}")
        return call_function(self.timers[name], TimerRequest(past_due=False))

    def has_timer(self, name: str) -> bool:
        return name in self.timers

    # -------------------------------------------------------------- queues
    def _queue_order(self) -> Iterator[str]:
        """Trigger queues first, their poison queues last (as failures land there)."""
        names = sorted(self.queues, key=lambda q: (q.endswith(POISON_SUFFIX), q))
        yield from names

    def drain(self, *, max_passes: int = 200) -> DrainSummary:
        """Deliver messages of every queue-triggered function until all queues are empty."""
        summary = DrainSummary()
        with self._drain_lock:
            for _ in range(max_passes):
                handled = 0
                for queue in self._queue_order():
                    run = run_queue(self.services, queue, self.queues[queue], max_rounds=1000)
                    summary.add(queue, run)
                    self.drained.add(queue, run)
                    handled += run.succeeded + run.failed
                if handled == 0:
                    break
        return summary

    def start_polling(self, interval: float = 0.1) -> None:
        """Poll every queue in a background thread (like the host's listener) until stopped."""
        if self._poller is not None:
            return
        self._polling.set()

        def loop() -> None:
            try:
                while self._polling.is_set():
                    if self.drain(max_passes=1).handled == 0:
                        time.sleep(interval)
            except BaseException as error:  # a silent dead poller looks like a hung app: say so
                print(f"runner: the queue poller died: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                self.poller_error = error

        self._poller = threading.Thread(target=loop, name="runner-queues", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._polling.clear()
        if self._poller is not None:
            self._poller.join(timeout=60)
            self._poller = None

    def queue_depths(self) -> dict[str, int]:
        depths = {}
        for queue in self.queues:
            properties = self.services.queues.client(queue).get_queue_properties()
            depths[queue] = properties.approximate_message_count or 0
        return depths


def build_services(env: dict[str, str], *, clock: Callable[[], datetime] | None = None, retries: int = 0) -> Services:
    """Services as tests/conftest.py's make_services builds them (Graph via StaticTokenCredential)."""
    from tests.conftest import make_services

    built = make_services(env, retries=retries)
    if clock is not None:
        built.clock = clock
    return built


def runner_for(azurite: Any, graph: Any, dime: Any) -> LocalRunner:
    """A runner wired to Azurite and the fakes, with Graph's webhook URLs pointing at itself and
    empty storage: what the demo, the convergence test and the runner tests all start from."""
    from tests.conftest import clean_storage, settings_env

    runner = LocalRunner()
    env = settings_env(
        azurite,
        graph.base_url,
        dime.base_url,
        NOTIFICATION_URL=runner.url("notifications"),
        LIFECYCLE_NOTIFICATION_URL=runner.url("lifecycle"),
        DIME_PUBLICATIONS_URL=runner.origin + "/api/dime/publications",  # the registration adds the key
        DIME_SOURCE_APPS="BC",
    )
    runner.services = build_services(env, clock=runner.clock)
    runner.env = env  # what more instances of the app (tests/worker_process.py) are started with
    clean_storage(runner.services)
    return runner
