"""Delta items are signals, not content; runs of one mailbox never overlap; series through delta.

Against real Azurite and the faithful fakes (graph.md "Delta for events": partial items, body
content type unverified, expired-token codes in either spelling, few sync-state generations).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

import function_app
from shared.adapters.graph import MailboxLimit
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.core.ids import appointment_guid
from shared.core.outlook_to_dime.appointments import DELETE_PROCEDURE, UPSERT_PROCEDURE
from shared.names import NOTIFICATIONS_QUEUE
from tests.conftest import TENANT_ID, notification_item, track
from tests.host import fire_timer, run_queue


@pytest.fixture
def person(graph, services):
    person = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    track(services, person)  # onboarded, with the subscription notification_item() names
    return person


def delta_timer():
    fire_timer(function_app.delta_timer, function_app.services())


def notify(services, person, event_id, change_type="updated"):
    body = json.dumps({"value": [notification_item(person["id"], event_id, change_type, None)]}).encode()
    assert function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body)).status_code == 202
    assert run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change).poisoned == 0


def upserts(dime):
    return [params for procedure, params in dime.calls if procedure == UPSERT_PROCEDURE]


def day(offset: int, hour: int) -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None) + timedelta(
        days=offset, hours=hour
    )


@pytest.mark.parametrize(("delta_body", "delta_sparse"), [(None, False), ("html", False), ("text", True)])
def test_one_event_hashes_the_same_whichever_path_saw_it(graph, dime, services, person, delta_body, delta_sparse):
    graph.delta_body, graph.delta_sparse = delta_body, delta_sparse
    event = graph.create_event(person["id"], "Visit", body="Bring <the> ladder", start=day(1, 9), end=day(1, 10))
    notify(services, person, event["id"], "created")
    (written,) = upserts(dime)
    assert written["Body"] == "Bring <the> ladder"
    dime.reset_calls()
    graph.reset_requests()

    delta_timer()  # a first round lists the event: its changeKey equals the link's

    assert dime.calls == []
    assert graph.batch_members == []  # nothing read in full: the changeKey said nothing changed

    edited = graph.update_event(person["id"], event["id"], subject="Visit, moved")
    delta_timer()
    (rewritten,) = upserts(dime)
    assert (rewritten["Subject"], rewritten["Body"]) == ("Visit, moved", "Bring <the> ladder")
    link = services.store.get_link(person["id"], event["id"])
    assert link.change_key == edited["changeKey"]
    assert len(graph.batch_members) == 1  # read in full through $batch, never taken from the delta item


def test_a_missing_sensitivity_is_not_normal(graph, dime, services, person):
    graph.delta_sparse = True  # delta items without sensitivity and show-as
    graph.create_event(person["id"], "Private", sensitivity="private", start=day(1, 9), end=day(1, 10))
    graph.create_event(person["id"], "Public", sensitivity="normal", start=day(1, 11), end=day(1, 12))

    delta_timer()

    assert [u["Subject"] for u in upserts(dime)] == ["Public"]


def test_series_through_delta_alone_with_a_moved_and_a_cancelled_instance(graph, dime, services, person):
    master = graph.create_series(person["id"], "Stand-up", day(1, 9), day(1, 9) + timedelta(minutes=15), count=5)
    delta_timer()
    instances = graph.instances(person["id"], master["id"])
    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], i["id"]) for i in instances}
    dime.reset_calls()

    graph.update_instance(person["id"], instances[0]["id"], start=day(1, 10), end=day(1, 11))
    graph.cancel_instance(person["id"], instances[4]["id"])
    delta_timer()

    moved = appointment_guid(TENANT_ID, person["id"], instances[0]["id"])
    assert dime.appointments[moved]["Start"] == day(1, 10).strftime("%Y-%m-%d %H:%M:%SZ")
    assert [p["AppointmentGuid"] for proc, p in dime.calls if proc == DELETE_PROCEDURE] == [
        appointment_guid(TENANT_ID, person["id"], instances[4]["id"])
    ]
    assert [u["AppointmentGuid"] for u in upserts(dime)] == [moved]  # the other occurrences: relinked only
    assert len(dime.appointments) == 4


@pytest.mark.parametrize("code", ["SyncStateNotFound", "syncstatenotfound", "ResyncRequired"])
def test_expired_token_codes_are_compared_case_insensitively(graph, dime, services, person, code):
    graph.create_event(person["id"], "Visit", start=day(1, 9), end=day(1, 10))
    delta_timer()
    graph.fail_next(1, status=400, retry_after=None, path_contains="calendarView/delta", code=code)

    delta_timer()

    record = SyncStateStore(services.store).run(person["id"], "delta")
    assert (record["Outcome"], record["Round"]) == ("completed", "token-expired")


def test_a_delta_run_never_overlaps_another_for_the_same_mailbox(graph, dime, services, person):
    graph.create_event(person["id"], "Visit", start=day(1, 9), end=day(1, 10))
    store = SyncStateStore(services.store)
    now = datetime.now(UTC)
    assert store.take_lease(person["id"], "other-process", now, timedelta(minutes=10))
    assert not store.take_lease(person["id"], "me", now, timedelta(minutes=10))

    delta_timer()

    assert dime.calls == [] and graph.requests == []
    assert store.run(person["id"], "delta")["Outcome"] == "skipped-leased"

    # an expired lease (a crashed holder) is taken over; a released one too
    assert store.take_lease(person["id"], "me", now + timedelta(minutes=11), timedelta(minutes=10))
    store.release_lease(person["id"], "me")
    delta_timer()
    assert len(upserts(dime)) == 1


def test_a_run_whose_lease_was_taken_over_stores_no_position(graph, dime, services, person, monkeypatch):
    """A run outlived its lease (it expired; another run took the mailbox): its closing transaction
    gives back only a lease still ours, so it applies nothing, the delta row keeps the position the
    other run follows from, and the run record says what happened. (Before: the position was
    written over the other run's, unconditionally.)"""
    graph.create_event(person["id"], "Visit", start=day(1, 9), end=day(1, 10))
    delta_timer()
    store = SyncStateStore(services.store)
    position = store.delta_state(person["id"])
    calendar_delta = services.graph.calendar_delta

    async def while_another_run_takes_over(*args, **kwargs):
        page = await calendar_delta(*args, **kwargs)
        later = datetime.now(UTC) + timedelta(hours=1)  # our lease has expired by then
        assert store.take_lease(person["id"], "the-next-run", later, timedelta(minutes=10))
        return page

    monkeypatch.setattr(services.graph, "calendar_delta", while_another_run_takes_over)
    delta_timer()

    assert store.delta_state(person["id"]) == position
    record = store.run(person["id"], "delta")
    assert record["Outcome"] == "completed" and "lease expired" in record["LastError"]
    lease = services.store.table("syncstate").get_entity(person["id"], "delta-lease")
    assert lease["Owner"] == "the-next-run"  # still theirs


@pytest.mark.parametrize("same_link", [True, False], ids=["same-deltalink", "new-deltalink"])
def test_an_idle_run_writes_its_position_only_when_it_moved(graph, dime, services, person, monkeypatch, same_link):
    """Whether Graph answers an idle delta with the same deltaLink or a new one is not documented
    (FakeGraph issues a new one): both are played. The same one leaves the delta row unwritten;
    a new one is stored. The run record is written either way."""
    delta_timer()
    store = SyncStateStore(services.store)
    stored = store.delta_state(person["id"])
    before = services.store.table("syncstate").get_entity(person["id"], "delta").metadata["etag"]
    calendar_delta = services.graph.calendar_delta

    async def answer(*args, **kwargs):
        page = await calendar_delta(*args, **kwargs)
        return {**page, "@odata.deltaLink": stored.delta_link} if same_link else page

    monkeypatch.setattr(services.graph, "calendar_delta", answer)
    started = datetime.now(UTC)
    delta_timer()

    after = services.store.table("syncstate").get_entity(person["id"], "delta").metadata["etag"]
    assert (after == before) is same_link
    assert (store.delta_state(person["id"]) == stored) is same_link
    record = store.run(person["id"], "delta")
    assert record["Outcome"] == "completed" and datetime.fromisoformat(record["StartedAt"]) >= started


def test_a_batch_weighs_up_to_four_of_the_mailbox_limit():
    async def scenario() -> list[int]:
        limit = MailboxLimit(4)
        seen: list[int] = []

        async def hold(weight: int) -> None:
            async with limit.hold(weight):
                seen.append(limit.in_use)
                await asyncio.sleep(0.01)

        await asyncio.gather(hold(4), hold(1), hold(1), hold(20), hold(2))
        assert limit.peak <= 4 and limit.in_use == 0
        return seen

    assert max(asyncio.run(scenario())) <= 4


def test_notification_deletes_pass_the_breaker(graph, dime, services, person):
    events = [
        graph.create_event(person["id"], f"Job {n}", start=day(1, 8 + n % 10), end=day(1, 9 + n % 10)) for n in range(8)
    ]
    staying = [graph.create_event(person["id"], f"Stays {n}", start=day(2, 9 + n), end=day(2, 10 + n)) for n in (0, 1)]
    for event in events + staying:
        notify(services, person, event["id"], "created")
    for event in events:
        graph.delete_event(person["id"], event["id"])
        notify(services, person, event["id"], "deleted")

    # five deletes within 10 minutes pass (the floor; 20% of 10 links is less), the sixth trips the breaker
    assert len([1 for proc, _ in dime.calls if proc == DELETE_PROCEDURE]) == 5
    failed = [t for t in services.store.transactions_of(person["id"]) if t.status.value == "failed"]
    assert {t.error_code for t in failed} == {"CIRCUIT_BREAKER_TRIPPED"} and len(failed) == 3

    delta_timer()  # delta still sees them gone; its own breaker allows 3 of 5
    assert set(dime.appointments) == {appointment_guid(TENANT_ID, person["id"], e["id"]) for e in staying}


@pytest.mark.parametrize("deleted_get_status", [404, 200])
def test_delta_deletes_what_was_deleted_whatever_a_get_answers(graph, dime, services, person, deleted_get_status):
    graph.deleted_get_status = deleted_get_status
    events = [graph.create_event(person["id"], f"Job {n}", start=day(1, 8 + n), end=day(1, 9 + n)) for n in range(4)]
    delta_timer()
    graph.delete_event(person["id"], events[0]["id"])

    delta_timer()  # @removed, read again: 404, or 200 but absent from the calendar view

    gone = appointment_guid(TENANT_ID, person["id"], events[0]["id"])
    assert [p["AppointmentGuid"] for proc, p in dime.calls if proc == DELETE_PROCEDURE] == [gone]
    assert len(dime.appointments) == 3

    # a fresh round (expired token) does not report earlier deletions: a linked event it does not list
    # is read again, and again a 200 alone does not keep it
    graph.delete_event(person["id"], events[1]["id"])
    graph.expire_delta_tokens(person["id"])
    delta_timer()
    assert len(dime.appointments) == 2
