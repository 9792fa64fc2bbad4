"""Outlook -> Dime.Scheduler in real time, through the functions themselves.

Webhook POST -> real Azurite queue -> the queue function -> fake Dime.Scheduler, with Graph and
Dime.Scheduler as stateful HTTP fakes. The host's queue listener is stood in for by tests/host.py.
"""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app
from shared.adapters.storage.subscription_rows import delete_resource_row
from shared.core.ids import appointment_guid
from shared.core.outlook_to_dime.appointments import DELETE_PROCEDURE, UPSERT_PROCEDURE
from shared.names import NOTIFICATIONS_QUEUE
from shared.usecases.outlook_to_dime.pipeline import read as pipeline_read
from tests.conftest import TENANT_ID, notification_item, track
from tests.host import run_queue


def post(items: list[dict]) -> func.HttpResponse:
    body = json.dumps({"value": items}).encode()
    return function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body))


def deliver(services) -> None:
    """Let the queue function process everything queued (retrying failures like the host)."""
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    assert run.poisoned == 0, run.errors


@pytest.fixture
def person(graph, services):
    user = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    track(services, user)  # onboarded (notifications never onboard)
    return user


def notify(graph, services, person, event, change_type="updated", times=1):
    item = notification_item(person["id"], event["id"], change_type, event.get("changeKey"))
    for _ in range(times):
        assert post([item]).status_code == 202
    deliver(services)


def upserts(dime):
    return [params for procedure, params in dime.calls if procedure == UPSERT_PROCEDURE]


def deletes(dime):
    return [params for procedure, params in dime.calls if procedure == DELETE_PROCEDURE]


def test_create_busy_normal_event_makes_one_upsert(graph, dime, services, person):
    event = graph.create_event(person["id"], subject="Site visit", show_as="busy", sensitivity="normal")

    notify(graph, services, person, event, "created")

    assert len(upserts(dime)) == 1
    guid = appointment_guid(TENANT_ID, person["id"], event["id"])
    stored = dime.appointments[guid]
    assert stored["Subject"] == "Site visit"
    assert stored["ResourceEmail"] == "jane@contoso.com"
    assert stored["ShowAs"] == "3"
    assert stored["Start"] == "2026-11-23 09:00:00Z"
    link = services.store.get_link(person["id"], event["id"])
    assert link is not None and link.change_key == event["changeKey"]
    transactions = list(services.store.transactions_of(person["id"]))
    assert [(t.operation, t.status.value) for t in transactions] == [("upsert", "succeeded")]


def test_a_notification_never_onboards_a_mailbox(graph, dime, services):
    """Even with a valid clientState and a subscription row, the worker onboards nobody: a mailbox
    without a resource row (removed since the webhook checked) is skipped."""
    stranger = graph.add_user(mail="stranger@contoso.com")
    track(services, stranger)
    delete_resource_row(services.store, stranger["id"])
    event = graph.create_event(stranger["id"])
    graph.reset_requests()
    notify(graph, services, stranger, event, "created")

    assert services.store.get_resource(stranger["id"]) is None
    assert upserts(dime) == [] and graph.requests == []


def test_mailbox_without_mail_uses_its_upn(graph, dime, services):
    person = graph.add_user(mail=None, upn="tech@contoso.onmicrosoft.com")
    track(services, person)
    event = graph.create_event(person["id"])
    notify(graph, services, person, event, "created")
    assert upserts(dime)[0]["ResourceEmail"] == "tech@contoso.onmicrosoft.com"


def test_three_duplicate_notifications_make_no_extra_write(graph, dime, services, person):
    event = graph.create_event(person["id"])
    notify(graph, services, person, event, "created")
    graph.reset_requests()

    notify(graph, services, person, event, "updated", times=3)

    assert len(upserts(dime)) == 1
    assert graph.requests == []  # the stored changeKey answered without asking Graph


def test_an_edit_with_three_notifications_makes_exactly_one_upsert(graph, dime, services, person):
    event = graph.create_event(person["id"], subject="Before")
    notify(graph, services, person, event, "created")

    edited = graph.update_event(person["id"], event["id"], subject="After")
    notify(graph, services, person, edited, "updated", times=3)

    assert [u["Subject"] for u in upserts(dime)] == ["Before", "After"]


def test_replaying_a_processed_message_writes_nothing(graph, dime, services, person):
    event = graph.create_event(person["id"])
    notify(graph, services, person, event, "created")
    message = notification_item(person["id"], event["id"], "created", event["changeKey"])
    graph.reset_requests()
    dime.reset_calls()

    assert post([message]).status_code == 202
    deliver(services)

    assert dime.calls == []
    assert graph.requests == []


def test_made_private_without_consent_deletes_the_appointment(graph, dime, services, person):
    event = graph.create_event(person["id"], subject="Lunch")
    notify(graph, services, person, event, "created")

    private = graph.update_event(person["id"], event["id"], sensitivity="private")
    notify(graph, services, person, private)

    guid = appointment_guid(TENANT_ID, person["id"], event["id"])
    assert [d["AppointmentGuid"] for d in deletes(dime)] == [guid]
    assert guid not in dime.appointments
    assert services.store.get_link(person["id"], event["id"]) is None


def test_private_event_with_consent_hides_subject_and_body(graph, dime, services, person):
    from dataclasses import replace

    from shared.core.consent import Consent

    resource_consent = Consent.parse(True, "busy", "normal,private")
    services.settings = replace(services.settings, default_consent=resource_consent)
    track(services, person)  # onboarded again, with that consent
    event = graph.create_event(person["id"], subject="Doctor", body="details", sensitivity="private")

    notify(graph, services, person, event, "created")

    [written] = upserts(dime)
    assert written["Subject"] == "Private appointment"
    assert written["Body"] == ""
    assert written["Sensitivity"] == "3"


def test_a_free_event_is_never_written(graph, dime, services, person):
    event = graph.create_event(person["id"], show_as="free")
    notify(graph, services, person, event, "created", times=2)
    assert dime.calls == []
    assert services.store.get_link(person["id"], event["id"]) is None


@pytest.mark.parametrize("deleted_get_status", [404, 200])
def test_deleted_event_is_deleted_from_the_board(graph, dime, services, person, deleted_get_status):
    graph.deleted_get_status = deleted_get_status  # unverified in Graph: the code must hold under both
    event = graph.create_event(person["id"])
    notify(graph, services, person, event, "created")
    graph.delete_event(person["id"], event["id"])
    graph.reset_requests()

    notify(graph, services, person, {"id": event["id"]}, "deleted")

    assert len(deletes(dime)) == 1
    assert dime.appointments == {}
    # a `deleted` notification is a claim: confirmed by a GET (404), or, when a deleted event still
    # answers 200, by its absence from the calendar view over its own time range
    paths = [r.path.rsplit("/", 1)[-1] if "calendarView" in r.path else "GET event" for r in graph.requests]
    assert paths == (["GET event"] if deleted_get_status == 404 else ["GET event", "calendarView"])


def test_updated_notification_for_a_vanished_event_deletes_it(graph, dime, services, person):
    event = graph.create_event(person["id"])
    notify(graph, services, person, event, "created")
    edited = graph.update_event(person["id"], event["id"], subject="Moved")
    graph.delete_event(person["id"], event["id"])

    notify(graph, services, person, edited, "updated")  # the edit's notification arrives after the delete

    assert len(deletes(dime)) == 1
    assert dime.appointments == {}


def test_all_day_event_stays_whole_days(graph, dime, services, person):
    event = graph.create_event(
        person["id"], is_all_day=True, start="2026-11-24T00:00:00", end="2026-11-25T00:00:00", show_as="oof"
    )
    notify(graph, services, person, event, "created")
    [written] = upserts(dime)
    assert (written["Start"], written["End"]) == ("2026-11-24 00:00:00Z", "2026-11-25 00:00:00Z")


def test_event_id_with_slash_and_plus_is_stored_and_read_back(graph, dime, services, person):
    event = graph.create_event(person["id"], id="AAMkAD/abc+def==")
    notify(graph, services, person, event, "created")
    assert services.store.get_link(person["id"], "AAMkAD/abc+def==") is not None
    assert len(upserts(dime)) == 1


def test_graph_429_is_processed_on_redelivery_without_duplicates(graph, dime, services, person):
    event = graph.create_event(person["id"])
    graph.fail_next(status=429, retry_after=1, path_contains="/events/")

    run_item = notification_item(person["id"], event["id"], "created", event["changeKey"])
    assert post([run_item]).status_code == 202
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.failed == 1 and run.succeeded == 1
    assert "GRAPH_THROTTLED" in run.errors[0]
    assert len(upserts(dime)) == 1


def test_dime_500_is_processed_on_redelivery_without_duplicates(graph, dime, services, person):
    event = graph.create_event(person["id"])
    dime.fail_next(status=500)

    assert post([notification_item(person["id"], event["id"], "created", event["changeKey"])]).status_code == 202
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.failed == 1 and run.succeeded == 1
    assert "DIME_UNAVAILABLE" in run.errors[0]
    assert len(dime.appointments) == 1
    assert len([t for t in services.store.transactions_of(person["id"]) if t.status.value == "succeeded"]) == 1


def test_dime_failure_inside_a_200_envelope_is_a_failure(graph, dime, services, person):
    event = graph.create_event(person["id"])
    dime.fail_next(status=200, inner_status=500)

    post([notification_item(person["id"], event["id"], "created", event["changeKey"])])
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.failed == 1 and run.succeeded == 1
    assert services.store.get_link(person["id"], event["id"]).change_key == event["changeKey"]


@pytest.mark.parametrize("inner_status", [400, 500, 200])
def test_a_sql_deadlock_is_retried_and_lands(graph, dime, services, person, inner_status):
    """SQL error 1205's text says "lock resources": once filed as a permanent "resource unknown"
    that no retry ever picked up. Now transient: the queue delivers again and it lands."""
    event = graph.create_event(person["id"])
    dime.deadlock_next(inner_status=inner_status)

    post([notification_item(person["id"], event["id"], "created", event["changeKey"])])
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.failed == 1 and run.succeeded == 1 and run.poisoned == 0
    assert "DIME_UNAVAILABLE" in run.errors[0] and "SQL error 1205" in run.errors[0]
    assert appointment_guid(TENANT_ID, person["id"], event["id"]) in dime.appointments
    assert [t.status.value for t in services.store.transactions_of(person["id"])] == ["succeeded"]


def test_unknown_resource_email_becomes_a_visible_failed_transaction(graph, dime, services, person):
    dime.known_resources = {"someone.else@contoso.com"}
    event = graph.create_event(person["id"])

    notify(graph, services, person, event, "created")

    [failed] = [t for t in services.store.transactions_of(person["id"]) if t.status.value == "failed"]
    assert failed.error_code in ("DIME_RESOURCE_UNKNOWN", "DIME_REJECTED")
    assert failed.payload["message"]["eventId"] == event["id"]
    assert services.store.get_link(person["id"], event["id"]) is None


def test_persistent_outage_ends_in_the_poison_queue_not_silence(graph, dime, services, person):
    event = graph.create_event(person["id"])
    dime.fail_next(count=10, status=503)

    post([notification_item(person["id"], event["id"], "created", event["changeKey"])])
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.poisoned == 1
    poisoned = list(services.queues.client(NOTIFICATIONS_QUEUE + "-poison").peek_messages())
    assert json.loads(poisoned[0].content)["eventId"] == event["id"]


def test_duplicates_delivered_in_one_batch_make_one_write(graph, dime, services, person):
    """The host hands a batch of messages to the worker at once: duplicates posted separately
    arrive together, and take turns on the event."""
    event = graph.create_event(person["id"])
    edited = graph.update_event(person["id"], event["id"], subject="Edited")
    item = notification_item(person["id"], event["id"], "updated", edited["changeKey"])

    for _ in range(3):
        assert post([item]).status_code == 202
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.succeeded == 3
    assert len(upserts(dime)) == 1


def test_duplicates_in_one_post_are_one_message_and_one_read(graph, dime, services, person):
    """Graph's three notifications of one edit in one POST: one message, folded to one change."""
    event = graph.create_event(person["id"])
    edited = graph.update_event(person["id"], event["id"], subject="Edited")
    item = notification_item(person["id"], event["id"], "updated", edited["changeKey"])
    other = graph.create_event(person["id"], subject="Other")
    graph.reset_requests()

    assert post([item, item, item, notification_item(person["id"], other["id"], "created", "x")]).status_code == 202
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.succeeded == 1
    assert len(upserts(dime)) == 2
    reads = [*graph.requests, *graph.batch_members]  # read with $batch, with the other event
    event_reads = [r for r in reads if r.method == "GET" and r.path.endswith(event["id"])]
    assert len(event_reads) == 1
    succeeded = [t for t in services.store.transactions_of(person["id"]) if t.status.value == "succeeded"]
    assert sorted(t.event_id for t in succeeded) == sorted([event["id"], other["id"]])  # written in one batch


def test_a_transient_failure_in_a_packed_message_requeues_only_that_change(graph, dime, services, person, monkeypatch):
    """A $batch member still throttled after its retries is that event's transient failure only."""
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(pipeline_read, "sleep", no_sleep)
    first = graph.create_event(person["id"], subject="First")
    second = graph.create_event(person["id"], subject="Second")
    items = [notification_item(person["id"], e["id"], "created", e["changeKey"]) for e in (first, second)]
    assert post(items).status_code == 202
    graph.fail_next(count=pipeline_read.MEMBER_ATTEMPTS, status=503, path_contains=second["id"])

    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.failed == 0 and run.succeeded == 2  # the packed message, then the requeued change
    assert waits == [1.0] * (pipeline_read.MEMBER_ATTEMPTS - 1)  # its Retry-After, honoured between attempts
    assert len(dime.appointments) == 2
    assert len([p for p in upserts(dime) if p["Subject"] == "First"]) == 1  # never re-run


def test_a_member_throttled_once_is_asked_again_within_the_message(graph, dime, services, person, monkeypatch):
    async def no_sleep(seconds: float) -> None:
        pass

    monkeypatch.setattr(pipeline_read, "sleep", no_sleep)
    first = graph.create_event(person["id"], subject="First")
    second = graph.create_event(person["id"], subject="Second")
    items = [notification_item(person["id"], e["id"], "created", e["changeKey"]) for e in (first, second)]
    assert post(items).status_code == 202
    graph.fail_next(count=1, status=429, path_contains=second["id"])

    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.succeeded == 1  # no message of its own
    assert len(dime.appointments) == 2 and len(dime.requests) == 1  # both in one /import


def test_an_event_graph_answers_under_another_id_is_refused_not_keyed_on_the_notification(
    graph, dime, services, person
):
    """Issue 11: links are keyed on the id Graph returns, never on the notification's."""
    event = graph.create_event(person["id"], subject="Audit")
    alias = event["id"].swapcase()  # a case variant of the id, which Graph answers as the event itself
    graph.id_aliases[alias] = event["id"]

    notify(graph, services, person, {**event, "id": alias}, "created")

    assert upserts(dime) == [] and dime.appointments == {}
    assert services.store.get_link(person["id"], alias) is None
    assert list(services.store.transactions_of(person["id"])) == []

    notify(graph, services, person, event, "updated")  # the event under Graph's own id

    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], event["id"])}
    assert services.store.get_link(person["id"], event["id"]) is not None


def test_a_batch_answer_under_another_id_is_refused(graph, dime, services, person):
    """The same check for content read in full elsewhere ($batch, /instances): the answer's id rules."""
    import asyncio

    from shared.core.decision import Action
    from shared.usecases.outlook_to_dime import pipeline
    from shared.usecases.outlook_to_dime.pipeline import Change

    event = graph.create_event(person["id"], subject="Audit")
    resource = services.store.get_resource(person["id"])
    answer = graph.get_event(person["id"], event["id"])

    (outcome,) = asyncio.run(
        pipeline.run(
            services,
            [Change(person["id"], event["id"].swapcase(), event_json=answer)],
            resources={person["id"]: resource},
        )
    )
    decision = outcome.decision

    assert (decision.action, decision.reason) == (Action.SKIP, "id-mismatch")
    assert dime.appointments == {} and services.store.get_link(person["id"], event["id"].swapcase()) is None
