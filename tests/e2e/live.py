"""Helpers shared by the subscription, admin and lifecycle end-to-end tests.

`wire` builds the app's services against Azurite and the fakes with NOTIFICATION_URL and
LIFECYCLE_NOTIFICATION_URL pointing at a FunctionsServer, so FakeGraph's handshakes and
lifecycle POSTs reach the real HTTP functions.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import httpx
import pytest

import function_app
from shared.names import ADMIN_ROUTE_PREFIX, LIFECYCLE_QUEUE
from shared.services import Services
from tests.conftest import MANAGE_HEADERS, clean_storage, make_services, settings_env
from tests.functions_server import FunctionsServer
from tests.host import call_function, run_queue


def wire(
    azurite: Any, graph: Any, dime: Any, monkeypatch: pytest.MonkeyPatch, server: FunctionsServer, **env: str
) -> Services:
    overrides = {
        "NOTIFICATION_URL": server.url("notifications"),
        "LIFECYCLE_NOTIFICATION_URL": server.url("lifecycle"),
        **env,
    }
    # The fakes POST with httpx.post, which builds a client (and an SSL context, ~40 ms) per call;
    # a shared client makes handshakes and lifecycle deliveries take milliseconds.
    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)
    built = make_services(settings_env(azurite, graph.base_url, dime.base_url, **overrides))
    clean_storage(built)
    monkeypatch.setattr(function_app, "services", lambda: built)
    return built


def admin(method: str, mailbox: str | None = None, body: Any = None, **params: str) -> tuple[int, Any]:
    """Call the resources admin API as the host would; returns (status, decoded JSON)."""
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    if mailbox is None:
        url = f"/api/{ADMIN_ROUTE_PREFIX}/resources"
        request = func.HttpRequest(method, url, params=params, headers=MANAGE_HEADERS, body=raw)
        response = call_function(function_app.manage_resources_list, request)
    else:
        url = f"/api/{ADMIN_ROUTE_PREFIX}/resources/{mailbox}"
        request = func.HttpRequest(
            method, url, params=params, route_params={"mailbox": mailbox}, headers=MANAGE_HEADERS, body=raw
        )
        response = call_function(function_app.manage_resource, request)
    text = response.get_body().decode()
    return response.status_code, json.loads(text) if text else None


def subscription_writes(graph: Any) -> dict[str, int]:
    """Graph subscription requests by kind, from the fake's request log."""
    counts = {"create": 0, "renew": 0, "delete": 0, "list": 0, "reauthorize": 0}
    for request in graph.requests:
        segments = [s for s in request.path.split("/") if s]
        if "subscriptions" not in [s.lower() for s in segments]:
            continue
        tail = segments[segments.index("subscriptions") + 1 :]
        if request.method == "POST" and not tail:
            counts["create"] += 1
        elif request.method == "GET" and not tail:
            counts["list"] += 1
        elif request.method == "PATCH":
            counts["renew"] += 1
        elif request.method == "DELETE":
            counts["delete"] += 1
        elif request.method == "POST" and tail[-1:] == ["reauthorize"]:
            counts["reauthorize"] += 1
    return counts


def validations(graph: Any) -> list[Any]:
    return [d for d in graph.deliveries if d.kind == "validation"]


def run_lifecycle(services: Services) -> None:
    run = run_queue(services, LIFECYCLE_QUEUE, function_app.apply_lifecycle)
    assert run.poisoned == 0 and run.failed == 0, run.errors
