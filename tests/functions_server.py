"""A loopback HTTP server in front of the real HTTP functions (tests and the offline demo).

Graph (here FakeGraph) must reach the app over HTTP: the subscription validation handshake and
notifications are POSTs to NOTIFICATION_URL / LIFECYCLE_NOTIFICATION_URL. This bridge turns each
request into a `func.HttpRequest` (method, URL, decoded query parameters, headers, body), calls the
function from `function_app` (looked up at call time, so monkeypatching works) and sends back its
status, body and content type, as the Functions host would.

    with FunctionsServer() as server:
        env = {"NOTIFICATION_URL": server.url("notifications"), ...}
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from tests.host import call_function

# /api/<route> -> the name of the function in function_app.
DEFAULT_ROUTES = {"notifications": "notifications", "lifecycle": "lifecycle"}


def _function(name: str) -> Callable[..., Any]:
    import function_app

    return getattr(function_app, name)


class FunctionsServer:
    def __init__(self, routes: dict[str, str] | None = None, key: str = "x") -> None:
        self.routes = dict(routes or DEFAULT_ROUTES)
        self.key = key
        self.calls: list[tuple[str, int]] = []  # (route, status), in order
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bridge._serve(self)

            def do_GET(self) -> None:
                bridge._serve(self)

            def do_PUT(self) -> None:
                bridge._serve(self)

            def do_PATCH(self) -> None:
                bridge._serve(self)

            def do_DELETE(self) -> None:
                bridge._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, route: str) -> str:
        """The public URL of a function, with the function key in ?code= (as Graph is given it)."""
        return f"{self.origin}/api/{route}?code={self.key}"

    def start(self) -> FunctionsServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="functions-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FunctionsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        route = parts.path.removeprefix("/api/").strip("/")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        params = dict(parse_qsl(parts.query, keep_blank_values=True))  # decoded, like the host
        if route not in self.routes:
            self._answer(handler, 404, b"no such function", "text/plain")
            return
        if params.get("code") != self.key and handler.headers.get("x-functions-key") != self.key:
            self._answer(handler, 401, b"", "text/plain")  # the host refuses a missing/wrong key
            return
        request = func.HttpRequest(
            method=handler.command,
            url=self.origin + handler.path,
            headers=dict(handler.headers.items()),
            params=params,
            route_params={},
            body=body,
        )
        try:
            response = call_function(_function(self.routes[route]), request)
        except Exception as error:  # the host answers 500 when a function raises
            self.calls.append((route, 500))
            self._answer(handler, 500, f"{type(error).__name__}: {error}".encode(), "text/plain")
            return
        self.calls.append((route, response.status_code))
        mimetype = response.mimetype or "text/plain"
        content_type = f"{mimetype}; charset={response.charset}" if response.charset else mimetype
        self._answer(handler, response.status_code, response.get_body() or b"", content_type)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
