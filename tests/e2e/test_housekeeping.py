"""Housekeeping of the rows kept for late deliveries (tombstones both ways, last-error notes),
purged by the retry timer against real Azurite. Row age is the table's own Timestamp, so the tests
write an old batch, wait past a moment, write a young batch, and run the timer with a clock that
puts that moment exactly TOMBSTONE_RETENTION_DAYS ago."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.adapters.storage.event_links_store import EventLinkStore
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.adapters.storage.transactions_store import LAST_ERROR_PARTITION, transaction_store
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.names import EVENT_LINKS_TABLE, SYNCSTATE_TABLE, TRANSACTIONS_TABLE
from shared.services import Services
from shared.usecases.housekeeping import purge_expired
from shared.usecases.outlook_to_dime import pipeline
from shared.usecases.outlook_to_dime.pipeline import Change
from tests.conftest import track
from tests.e2e.test_series_and_deletes import day, notify
from tests.host import call_function

RETENTION = 30  # the default


def at(services: Services, moment: datetime) -> Services:
    """The same adapters with the clock at `moment`."""
    return Services(
        services.settings, clock=lambda: moment, store=services.store, queues=services.queues,
        graph=services.graph, dime=services.dime,
    )  # fmt: skip


def retry_timer(services: Services, monkeypatch) -> None:
    monkeypatch.setattr(function_app, "services", lambda: services)
    call_function(function_app.retry_failed, TimerRequest(past_due=False))


def a_moment_between() -> datetime:
    time.sleep(1.1)  # Azurite's Timestamp has sub-second precision; a second either side is plenty
    moment = datetime.now(UTC)
    time.sleep(1.1)
    return moment


def deleted_appointment(store: EventLinkStore, guid: str, mailboxes: list[str], event_id: str | None = None) -> None:
    store.save_state(AppointmentState(guid, "2026-11-01T08:00:00Z", deleted=True, publication=None))
    for mailbox in mailboxes:
        store.save_link(EventLink(guid, mailbox, "R-1", "a@contoso.com", event_id, 1, None, None, "2026-11-01"))


def keys(services: Services, table: str, query: str, **parameters: str) -> set[tuple[str, str]]:
    rows = services.store.table(table).query_entities(query, parameters=parameters)
    return {(r["PartitionKey"], r["RowKey"]) for r in rows}


def test_old_rows_of_every_kind_are_purged_young_ones_and_everything_else_kept(services, monkeypatch):
    syncstate, notes, appointments = (
        SyncStateStore(services.store),
        transaction_store(services),
        EventLinkStore(services.store),
    )
    now = datetime.now(UTC)
    for n in range(30):  # old: two mailboxes, one table transaction per partition
        syncstate.add_tombstone(f"mailbox-{n % 2}", f"AAMk-old-{n}", now)
    for n in range(5):
        notes.remember_last_error(f"old-{n}", "DIME_UNAVAILABLE", "503", 2)
    deleted_appointment(appointments, "old-deleted", ["mailbox-0", "mailbox-1"])
    deleted_appointment(appointments, "old-but-event-left", ["mailbox-0"], event_id="AAMk-left")  # unfinished
    appointments.save_state(AppointmentState("old-alive", "2026-11-01T08:00:00Z", deleted=False, publication=None))
    syncstate.save_reconcile_cursor("mailbox-0", None, now)  # not a tombstone: never purged
    moment = a_moment_between()
    syncstate.add_tombstone("mailbox-0", "AAMk-young", now)
    syncstate.add_tombstone("mailbox-1", "AAMk-old-1", now)  # written again: young again
    notes.remember_last_error("young", "GRAPH_THROTTLED", "429", 1)
    deleted_appointment(appointments, "young-deleted", ["mailbox-0"])

    clocked = at(services, moment + timedelta(days=RETENTION))
    retry_timer(clocked, monkeypatch)

    assert keys(services, SYNCSTATE_TABLE, "RowKey ge 'tomb-' and RowKey lt 'tomb.'") == {
        ("mailbox-0", "tomb-" + _digest("AAMk-young")),
        ("mailbox-1", "tomb-" + _digest("AAMk-old-1")),
    }
    assert syncstate.reconcile_cursor("mailbox-0") is None and keys(services, SYNCSTATE_TABLE, "RowKey eq 'reconcile'")
    assert keys(services, TRANSACTIONS_TABLE, "PartitionKey eq @pk", pk=LAST_ERROR_PARTITION) == {
        (LAST_ERROR_PARTITION, "young")
    }
    left = {pk for pk, _ in keys(services, EVENT_LINKS_TABLE, "PartitionKey ne '~outlook-origin'")}
    assert left == {"old-but-event-left", "old-alive", "young-deleted"}
    assert syncstate.is_tombstoned("mailbox-1", "AAMk-old-1") and not syncstate.is_tombstoned("mailbox-0", "AAMk-old-2")


def _digest(event_id: str) -> str:
    from shared.core.outlook_to_dime.delta import digest

    return digest(event_id)


def test_one_bounded_batch_per_run_and_the_counts_in_the_report(services):
    syncstate = SyncStateStore(services.store)
    for n in range(7):
        syncstate.add_tombstone("mailbox-0", f"AAMk-{n}", datetime.now(UTC))
    clocked = at(services, datetime.now(UTC) + timedelta(days=RETENTION, seconds=5))
    first = purge_expired(clocked, limit=5)
    assert (first["tombstones"], first["lastErrors"], first["dimeTombstoneRows"]) == (5, 0, 0)
    assert first["tableRequests"] == 4  # three queries, one table transaction
    assert purge_expired(clocked, limit=5)["tombstones"] == 2
    assert purge_expired(clocked, limit=5)["tombstones"] == 0


def test_a_row_written_again_after_it_was_read_is_not_deleted(services):
    """Etag-conditional deletes: the tombstone re-written between the query and the delete (the
    event deleted again) stays; a revived appointment keeps every row of its partition."""
    syncstate, appointments = SyncStateStore(services.store), EventLinkStore(services.store)
    syncstate.add_tombstone("mailbox-0", "AAMk-1", datetime.now(UTC))
    syncstate.add_tombstone("mailbox-0", "AAMk-2", datetime.now(UTC))
    deleted_appointment(appointments, "guid-1", ["mailbox-0", "mailbox-1"])
    before = datetime.now(UTC) + timedelta(seconds=5)
    rows = syncstate.expired_tombstones(before, 100)
    partition = appointments.expired_tombstones(before, 100)
    assert len(rows) == 2 and len(partition) == 3
    syncstate.add_tombstone("mailbox-0", "AAMk-1", datetime.now(UTC))
    state, _ = appointments.read("guid-1")
    appointments.save_state(AppointmentState("guid-1", "2026-11-02T08:00:00Z", False, None, etag=state.etag))

    assert syncstate.delete_rows(rows)[0] == 1
    assert syncstate.is_tombstoned("mailbox-0", "AAMk-1") and not syncstate.is_tombstoned("mailbox-0", "AAMk-2")
    assert appointments.delete_rows(partition)[0] == 0
    assert len(keys(services, EVENT_LINKS_TABLE, "PartitionKey eq 'guid-1'")) == 3


def test_a_tombstone_still_refuses_a_late_change_until_its_retention_ends(graph, dime, services, monkeypatch):
    """A deleted event that still answers GET (Deleted Items) reached again on a path that does not
    ask for proof by itself (delta's reads): its tombstone makes it prove membership, and it fails."""
    graph.deleted_get_status = 200
    person = graph.add_user(mail="jane@contoso.com")
    resource = track(services, person)
    event = graph.create_event(person["id"], "Visit", start=day(1, 9), end=day(1, 10))
    notify(services, person, event["id"], "created")
    graph.delete_event(person["id"], event["id"])
    notify(services, person, event["id"], "deleted")
    assert dime.appointments == {}
    deleted_at = datetime.now(UTC)

    retry_timer(at(services, deleted_at + timedelta(days=RETENTION - 1)), monkeypatch)
    assert SyncStateStore(services.store).is_tombstoned(person["id"], event["id"])
    (outcome,) = asyncio.run(
        pipeline.run(services, [Change(person["id"], event["id"])], resources={person["id"]: resource})
    )
    assert outcome.decision is not None and outcome.decision.reason == "not-in-calendar" and dime.appointments == {}

    retry_timer(at(services, deleted_at + timedelta(days=RETENTION, seconds=5)), monkeypatch)
    assert not SyncStateStore(services.store).is_tombstoned(person["id"], event["id"])


@pytest.mark.parametrize("rows", [0, 1])
def test_the_retry_timer_logs_what_it_purged(services, monkeypatch, caplog, rows):
    for n in range(rows):
        transaction_store(services).remember_last_error(f"note-{n}", "DIME_UNAVAILABLE", "503", 2)
    caplog.set_level("INFO")
    retry_timer(at(services, datetime.now(UTC) + timedelta(days=RETENTION, seconds=5)), monkeypatch)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry timer:")]
    assert f"'lastErrors': {rows}" in line and "'tombstones': 0" in line and "'tableRequests'" in line
