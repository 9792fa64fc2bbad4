"""Failures end visible and heal: poison queues -> failed transactions -> the retry timer / admin retry.

The clock is injected (services.clock), so backoff is exercised without sleeping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.ids import appointment_guid
from shared.core.outlook_to_dime.appointments import UPSERT_PROCEDURE
from shared.names import LIFECYCLE_QUEUE, NOTIFICATIONS_QUEUE, POISON_SUFFIX
from tests.conftest import MANAGE_HEADERS, TENANT_ID, drain_queue, notification_item, track
from tests.host import call_function, run_queue

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(services) -> Clock:
    clock = Clock()
    services.clock = clock
    return clock


@pytest.fixture
def person(graph, services):
    user = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    track(services, user)
    return user


def post(*items: dict) -> None:
    body = json.dumps({"value": list(items)}).encode()
    assert function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body)).status_code == 202


def run_retry_timer() -> None:
    call_function(function_app.retry_failed, TimerRequest(past_due=False))


def admin_retry(body: dict) -> tuple[int, dict]:
    request = func.HttpRequest(
        "POST", "/api/manage/transactions/retry", headers=MANAGE_HEADERS, body=json.dumps(body).encode()
    )
    response = call_function(function_app.manage_transactions_retry, request)
    return response.status_code, json.loads(response.get_body())


def poison_notifications(services) -> None:
    run = run_queue(services, NOTIFICATIONS_QUEUE + POISON_SUFFIX, function_app.poisoned_notification)
    assert run.failed == 0, run.errors


def failed(services) -> list:
    return list(transaction_store(services).failed())


def upserts(dime) -> list:
    return [params for procedure, params in dime.calls if procedure == UPSERT_PROCEDURE]


def test_dime_outage_poisons_then_the_retry_timer_heals_the_board_without_duplicates(
    graph, dime, services, clock, person
):
    events = [graph.create_event(person["id"], subject=f"Visit {i}") for i in range(3)]
    dime.fail_next(count=1000, status=500)

    post(*(notification_item(person["id"], e["id"], "created", e["changeKey"]) for e in events))
    assert run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change).poisoned == 3
    poison_notifications(services)

    open_failures = failed(services)
    assert len(open_failures) == 3
    assert {t.error_code for t in open_failures} == {"DIME_UNAVAILABLE"}  # the cause, not just "poisoned"
    assert {t.event_id for t in open_failures} == {e["id"] for e in events}
    assert all(t.mailbox_id == person["id"] and t.payload["queue"] == NOTIFICATIONS_QUEUE for t in open_failures)

    # Each failed its 5 deliveries: 5 attempts, which the schedule counts as one.
    assert [t.attempts for t in failed(services)] == [5, 5, 5]
    run_retry_timer()  # not due yet: the first retry waits a minute
    assert [t.attempts for t in failed(services)] == [5, 5, 5]

    clock.advance(minutes=1)
    run_retry_timer()  # Dime.Scheduler still down: counted, pushed out by 2 minutes
    assert [t.attempts for t in failed(services)] == [6, 6, 6]
    assert {t.next_attempt_at for t in failed(services)} == {(clock.now + timedelta(minutes=2)).isoformat()}

    dime.clear_faults()
    clock.advance(minutes=1)
    run_retry_timer()  # healthy again, but not due yet
    assert dime.appointments == {}

    clock.advance(minutes=1)
    run_retry_timer()

    assert failed(services) == []
    board = dime.appointments
    assert len(board) == 3
    for event in events:
        written = board[appointment_guid(TENANT_ID, person["id"], event["id"])]
        assert written["Subject"] == event["subject"]
        assert written["ResourceEmail"] == "jane@contoso.com"
    assert len(upserts(dime)) == 3  # one accepted write per event
    rows = list(services.store.transactions_of(person["id"]))
    healed = [t for t in rows if t.payload]  # the poisoned ones, now succeeded (last error kept)
    assert len(healed) == 3 and {t.status.value for t in healed} == {"succeeded"}
    assert {t.attempts for t in healed} == {7}  # 5 deliveries, a failed retry, the one that healed it
    assert {t.scheduled_attempts for t in healed} == {3}
    assert len([t for t in rows if t.status.value == "succeeded"]) == 6  # + the writes themselves

    run_retry_timer()  # nothing left to do
    assert len(upserts(dime)) == 3


def test_message_failing_past_the_dequeue_limit_is_healed_by_an_admin_retry(graph, dime, services, clock, person):
    event = graph.create_event(person["id"], subject="Workshop")
    graph.fail_next(count=1000, status=500, retry_after=None, path_contains="/events/")

    post(notification_item(person["id"], event["id"], "created", event["changeKey"]))
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    assert run.poisoned == 1 and "GRAPH_UNAVAILABLE" in run.errors[-1]
    poison_notifications(services)
    [transaction] = failed(services)
    assert transaction.error_code == "GRAPH_UNAVAILABLE"
    graph.clear_faults()

    status, answer = admin_retry({"ids": [transaction_id(transaction)]})

    assert status == 200 and answer["succeeded"] == 1 and answer["matched"] == 1
    assert answer["items"][0]["status"] == "succeeded"
    assert failed(services) == []
    assert dime.appointments[appointment_guid(TENANT_ID, person["id"], event["id"])]["Subject"] == "Workshop"


def last_error_notes(services) -> list:
    from shared.adapters.storage.transactions_store import LAST_ERROR_PARTITION

    return list(transaction_store(services)._table.query_entities(f"PartitionKey eq '{LAST_ERROR_PARTITION}'"))


def test_a_message_poisoned_by_a_dime_outage_carries_the_dime_error_and_heals_when_it_ends(
    graph, dime, services, clock, person
):
    event = graph.create_event(person["id"], subject="Inspection")
    dime.fail_next(count=10_000, status=503)  # Dime.Scheduler answers 503 to every call

    post(notification_item(person["id"], event["id"], "created", event["changeKey"]))
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    assert run.poisoned == 1 and run.failed == 5
    assert len(last_error_notes(services)) == 1  # the last transient error, kept for the poison handler
    poison_notifications(services)

    [transaction] = failed(services)
    assert transaction.error_code == "DIME_UNAVAILABLE"
    assert transaction.message.startswith(
        f"poisoned: the message failed all 5 deliveries on queue {NOTIFICATIONS_QUEUE} and was moved to "
        f"{NOTIFICATIONS_QUEUE}{POISON_SUFFIX}; the last delivery failed with DIME_UNAVAILABLE: "
    )
    assert "503" in transaction.message
    assert last_error_notes(services) == []  # consumed by the poisoning
    assert transaction.attempts == 5  # every delivery was an attempt
    assert transaction.next_attempt_at == (clock.now + timedelta(minutes=1)).isoformat()  # they count as one

    clock.advance(minutes=1)
    run_retry_timer()  # still down: the timer retries the Dime.Scheduler code, counts it, backs off
    [transaction] = failed(services)
    assert transaction.attempts == 6 and transaction.error_code == "DIME_UNAVAILABLE"
    assert transaction.next_attempt_at == (clock.now + timedelta(minutes=2)).isoformat()

    dime.clear_faults()  # the outage ends
    clock.advance(minutes=2)
    run_retry_timer()

    assert failed(services) == []
    assert dime.appointments[appointment_guid(TENANT_ID, person["id"], event["id"])]["Subject"] == "Inspection"


def test_a_message_poisoned_by_a_bug_shows_its_5_attempts_and_the_last_failure(
    graph, dime, services, clock, person, monkeypatch
):
    """An unclassified failure (here a TypeError) is noted too: the poisoned transaction keeps
    POISON_MESSAGE, counts the 5 deliveries as 5 attempts and says what the last one raised."""
    event = graph.create_event(person["id"], subject="Inspection")

    async def broken(*args, **kwargs):
        raise TypeError("unsupported operand <b>")

    monkeypatch.setattr(function_app, "apply_notifications", broken)
    post(notification_item(person["id"], event["id"], "created", event["changeKey"]))
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    assert run.poisoned == 1 and run.failed == 5
    poison_notifications(services)

    [transaction] = failed(services)
    assert transaction.attempts == 5 and transaction.error_code == "POISON_MESSAGE"
    assert transaction.message == (
        f"poisoned: the message failed all 5 deliveries on queue {NOTIFICATIONS_QUEUE} and was moved to "
        f"{NOTIFICATIONS_QUEUE}{POISON_SUFFIX}; the last delivery failed: TypeError: unsupported operand <b>"
    )
    assert last_error_notes(services) == []


def test_a_redelivery_that_succeeds_forgets_the_noted_error(graph, dime, services, clock, person):
    event = graph.create_event(person["id"], subject="Call")
    dime.fail_next(count=1, status=503)

    post(notification_item(person["id"], event["id"], "created", event["changeKey"]))
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert (run.failed, run.succeeded, run.poisoned) == (1, 1, 0)
    assert last_error_notes(services) == []
    assert failed(services) == []


def test_dime_400_is_permanent_not_retried_by_the_timer_but_by_an_admin(graph, dime, services, clock, person):
    event = graph.create_event(person["id"], subject="Audit")
    dime.fail_next(status=400)

    post(notification_item(person["id"], event["id"], "created", event["changeKey"]))
    assert run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change).failed == 0

    [transaction] = failed(services)
    assert transaction.error_code == "DIME_REJECTED"
    dime.reset_calls()
    clock.advance(days=2)
    run_retry_timer()
    assert dime.calls == [] and len(failed(services)) == 1

    status, answer = admin_retry({"all": True, "filter": {"mailbox": person["id"]}})

    assert status == 200 and answer["matched"] == 1 and answer["succeeded"] == 1
    assert failed(services) == []
    assert len(dime.appointments) == 1 and len(upserts(dime)) == 1


def test_transient_failures_stop_after_the_maximum_attempts_but_stay_listed(graph, dime, services, clock, person):
    event = graph.create_event(person["id"])
    dime.fail_next(count=1000, status=503)
    post(notification_item(person["id"], event["id"], "created", event["changeKey"]))
    run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    poison_notifications(services)

    for _ in range(services.settings.retry_max_attempts + 3):
        clock.advance(hours=7)
        run_retry_timer()

    [transaction] = failed(services)
    # 5 deliveries, then the automatic retries: the schedule counted the deliveries as one.
    assert transaction.attempts == services.settings.retry_max_attempts + 4
    assert transaction.scheduled_attempts == services.settings.retry_max_attempts
    assert transaction.error_code == "DIME_UNAVAILABLE"


def test_duplicates_of_one_message_poisoned_do_not_use_up_the_automatic_retries(services, clock, graph, person):
    """Graph sends a notification several times: identical queue messages, one fingerprint. Each
    copy poisoned after 5 deliveries reopens the same transaction; its attempts tell every try,
    and it is still retried a minute later, as one poisoned message is."""
    from shared.core.poison import fingerprint_of

    message = {"mailboxId": person["id"], "lifecycleEvent": "missed"}
    body = json.dumps(message).encode()
    store = transaction_store(services)
    for _ in range(3):
        store.remember_last_error(fingerprint_of(LIFECYCLE_QUEUE, body), "GRAPH_UNAVAILABLE", "Graph 503", 5)
        services.queues.client(LIFECYCLE_QUEUE + POISON_SUFFIX).send_message(body)
        assert run_queue(services, LIFECYCLE_QUEUE + POISON_SUFFIX, function_app.poisoned_lifecycle).failed == 0

    [transaction] = failed(services)
    assert transaction.attempts == 15 and transaction.scheduled_attempts == 3
    assert transaction.next_attempt_at == (clock.now + timedelta(minutes=4)).isoformat()
    clock.advance(minutes=4)
    run_retry_timer()
    assert failed(services) == [] and drain_queue(services, LIFECYCLE_QUEUE) == [message]  # retried: requeued


def test_a_message_that_is_not_json_becomes_a_visible_failed_transaction(services, clock):
    services.queues.client(NOTIFICATIONS_QUEUE + POISON_SUFFIX).send_message(b"\xffnot json {")
    services.queues.client(LIFECYCLE_QUEUE + POISON_SUFFIX).send_message(b"<xml/>")

    poison_notifications(services)
    run = run_queue(services, LIFECYCLE_QUEUE + POISON_SUFFIX, function_app.poisoned_lifecycle)
    assert run.failed == 0

    rows = failed(services)
    assert {t.mailbox_id for t in rows} == {"unknown"}
    assert {t.payload["queue"] for t in rows} == {NOTIFICATIONS_QUEUE, LIFECYCLE_QUEUE}
    assert {t.payload["raw"] for t in rows} == {"\ufffdnot json {", "<xml/>"}
    assert all(t.error_code == "POISON_MESSAGE" for t in rows)


def test_other_queues_are_requeued_and_a_message_poisoning_again_reopens_its_transaction(services, clock):
    message = {"mailboxId": "c0ffee00-0000-4000-8000-000000000001", "lifecycleEvent": "missed"}
    body = json.dumps(message).encode()
    poison_queue = LIFECYCLE_QUEUE + POISON_SUFFIX
    services.queues.client(poison_queue).send_message(body)
    run_queue(services, poison_queue, function_app.poisoned_lifecycle)
    [transaction] = failed(services)
    assert transaction.mailbox_id == message["mailboxId"] and transaction.operation == "lifecycle"

    clock.advance(minutes=1)
    run_retry_timer()

    assert failed(services) == []
    assert drain_queue(services, LIFECYCLE_QUEUE) == [message]  # back on its own queue, unchanged

    services.queues.client(poison_queue).send_message(body)  # it failed again
    run_queue(services, poison_queue, function_app.poisoned_lifecycle)

    [reopened] = failed(services)
    assert reopened.id == transaction.id and reopened.attempts == 3
    assert len(list(services.store.transactions_of(message["mailboxId"]))) == 1


def transaction_id(transaction) -> str:
    from shared.core.transaction_query import public_id

    return public_id(transaction.mailbox_id, transaction.id)
