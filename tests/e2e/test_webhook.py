"""The notification endpoint, called as the host calls it, with real Azurite queues."""

from __future__ import annotations

import json

import azure.functions as func

import function_app
from shared.core.webhook import client_state_for
from shared.names import LIFECYCLE_QUEUE, NOTIFICATIONS_QUEUE
from tests.conftest import drain_queue, notification_item, raw_queue_bodies

MAILBOX = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def call(body: bytes, params: dict | None = None, route: str = "notifications") -> func.HttpResponse:
    function = function_app.notifications if route == "notifications" else function_app.lifecycle
    return function(func.HttpRequest("POST", f"/api/{route}", params=params or {}, body=body))


def test_validation_token_comes_back_byte_for_byte_as_plain_text():
    token = "Validation: Testing client application reachability <script>&amp; 🙂 +/=%20"
    response = call(b"", {"validationToken": token})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_body() == token.encode("utf-8")


def test_validation_needs_no_settings(monkeypatch):
    """Graph validates the URL before the app may be fully configured: no settings are read."""

    def fail():
        raise AssertionError("services must not be built for the handshake")

    monkeypatch.setattr(function_app, "services", fail)
    assert call(b"", {"validationToken": "abc"}, route="lifecycle").get_body() == b"abc"


def test_ten_valid_notifications_make_one_message(services):
    """One put per POST: the changes travel packed, the worker folds and applies them."""
    items = [notification_item(MAILBOX, f"event-{i}", "updated", f"ck{i}") for i in range(10)]
    response = call(json.dumps({"value": items}).encode())

    assert response.status_code == 202
    stored = raw_queue_bodies(services, NOTIFICATIONS_QUEUE)  # base64, as host.json expects
    assert len(stored) == 1
    changes = json.loads(stored[0])["changes"]
    assert sorted(c["eventId"] for c in changes) == sorted(f"event-{i}" for i in range(10))
    assert {c["mailboxId"] for c in changes} == {MAILBOX}
    assert {c["changeKey"] for c in changes} == {f"ck{i}" for i in range(10)}


def test_one_notification_stays_a_plain_message(services):
    response = call(json.dumps({"value": [notification_item(MAILBOX, "event-1", "updated", "ck1")]}).encode())

    assert response.status_code == 202
    (stored,) = raw_queue_bodies(services, NOTIFICATIONS_QUEUE)
    assert json.loads(stored)["eventId"] == "event-1"


def test_forged_client_state_queues_nothing(services):
    item = notification_item(MAILBOX, "event-1")
    item["clientState"] = client_state_for(MAILBOX, "a-different-secret-entirely")
    response = call(json.dumps({"value": [item]}).encode())
    assert response.status_code == 202
    assert b"clientState" not in response.get_body()  # the answer does not say which check failed
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_foreign_tenant_queues_nothing(services):
    item = notification_item(MAILBOX, "event-1")
    item["tenantId"] = "99999999-9999-4999-8999-999999999999"
    assert call(json.dumps({"value": [item]}).encode()).status_code == 202
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_client_state_of_another_mailbox_is_refused(services):
    item = notification_item(MAILBOX, "event-1")
    item["clientState"] = client_state_for(
        "ffffffff-0000-4000-8000-000000000000", "test-client-state-secret-0123456789"
    )
    call(json.dumps({"value": [item]}).encode())
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_valid_items_are_queued_and_invalid_ones_dropped(services):
    good = notification_item(MAILBOX, "good")
    bad = notification_item(MAILBOX, "bad")
    bad["tenantId"] = "other"
    assert call(json.dumps({"value": [bad, good, "junk", None, 42]}).encode()).status_code == 202
    assert [m["eventId"] for m in drain_queue(services, NOTIFICATIONS_QUEUE)] == ["good"]


def test_malformed_json_is_400_with_a_reason(services):
    response = call(b'{"value": [')
    assert response.status_code == 400
    assert b"JSON" in response.get_body()


def test_body_without_value_list_is_400(services):
    for body in (b"{}", b'{"value": {}}', b"[]", b'"value"'):
        response = call(body)
        assert response.status_code == 400, body
        assert b"value" in response.get_body()


def test_two_mebibyte_body_is_413(services):
    response = call(b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert response.status_code == 413
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []


def test_lifecycle_items_go_to_the_lifecycle_queue(services):
    item = {
        "subscriptionId": "sub-1",
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
        "tenantId": services.settings.graph_tenant_id,
        "clientState": client_state_for(MAILBOX, "test-client-state-secret-0123456789"),
        "lifecycleEvent": "missed",
        "resource": f"users/{MAILBOX}/events",
    }
    assert call(json.dumps({"value": [item]}).encode(), route="lifecycle").status_code == 202
    assert drain_queue(services, NOTIFICATIONS_QUEUE) == []
    [message] = drain_queue(services, LIFECYCLE_QUEUE)
    assert (message["lifecycleEvent"], message["mailboxId"]) == ("missed", MAILBOX)


def test_queue_failure_answers_503_so_graph_retries(services, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("storage is down")

    monkeypatch.setattr(services.queues, "send", broken)
    response = call(json.dumps({"value": [notification_item(MAILBOX, "e")]}).encode())
    assert response.status_code == 503
