"""Several instances at once: nothing may rely on a lock inside one process.

Flex Consumption runs the app on several instances that share the queues and the storage
account; the per-event lock in the pipeline serialises work within one process only. Across
processes the etag-conditional link decides, and a loser must leave the board right. These tests
run a second instance as a real process (tests/worker_process.py) against the same Azurite and fakes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from shared.core.dime_to_outlook.publication import parse_publication, zone_named
from shared.core.ids import appointment_guid
from shared.names import NOTIFICATIONS_QUEUE
from shared.usecases.dime_to_outlook.place_appointment import apply_publication
from shared.usecases.outlook_to_dime.notification_batch import apply_notification
from tests.conftest import TENANT_ID, settings_env, track
from tests.e2e.test_dime_to_outlook import END, START, ours, planned, publish, work
from tests.linkseed import add_mailbox

ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict[str, str], mode: str = "drain") -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.worker_process", mode],
        cwd=ROOT,
        env={**os.environ, "WORKER_SETTINGS": json.dumps(env)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    return worker


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def message(mailbox_id: str, event_id: str, change_type: str, change_key: str | None) -> dict:
    return {
        "mailboxId": mailbox_id,
        "eventId": event_id,
        "changeType": change_type,
        "changeKey": change_key,
        "subscriptionId": "",
    }


def test_our_write_losing_to_another_instances_delete_leaves_no_unlinked_appointment(azurite, graph, dime, services):
    """Instance A (a worker process) writes an edit to Dime.Scheduler; before it can save the
    link, instance B (this process) confirms the event's deletion, deletes the appointment and the
    link. A's write lands after B's delete: A loses the link race, reads again, finds the event gone,
    and must delete what it wrote, or the appointment stays on the board with no link."""
    person = add_mailbox(graph, services, mail="race@contoso.com")
    event = graph.create_event(person["id"], subject="Visit", start="2026-11-24T08:00:00", end="2026-11-24T09:00:00")
    first = asyncio.run(apply_notification(message(person["id"], event["id"], "created", event["changeKey"]), services))
    guid = appointment_guid(TENANT_ID, person["id"], event["id"])
    assert first.decision.action.value == "upsert" and guid in dime.appointments

    edited = graph.update_event(person["id"], event["id"], subject="Visit (moved)")
    services.queues.send(NOTIFICATIONS_QUEUE, message(person["id"], event["id"], "updated", edited["changeKey"]))
    imports_before = len(dime.requests)
    dime.delay_next(3.0)  # A's import is held (and applied after the delay, as a slow service does)
    worker = start_worker(settings_env(azurite, graph.base_url, dime.base_url))
    assert worker.stdin is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    wait_for(lambda: len(dime.requests) > imports_before, "instance A's import")

    graph.delete_event(person["id"], event["id"])
    deleted = asyncio.run(apply_notification(message(person["id"], event["id"], "deleted", None), services))
    assert deleted.decision.action.value == "delete"
    assert guid not in dime.appointments  # B's delete is through; A's write is still held

    out, _ = worker.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["poisoned"] == 0, result
    assert services.store.get_link(person["id"], event["id"]) is None
    assert guid not in dime.appointments, "our lost write left an appointment on the board with no link"
    # A's undo is a delete of its own: held as unproven, its event proven gone (B's, then A's).
    reasons = [t.reason for t in services.store.transactions_of(person["id"])]
    assert reasons.count("event-deleted") + reasons.count("unlinked-after-race") == 2, reasons


def test_instances_sharing_a_queue_write_each_change_once_and_agree_with_outlook(azurite, graph, dime, services):
    """Three worker processes drain the same notifications (each change notified three times, so
    duplicates land on different instances at once): the board is exact."""
    people = [add_mailbox(graph, services, mail=f"tech{n}@contoso.com") for n in range(3)]
    expected = {}
    for person in people:
        for n in range(12):
            event = graph.create_event(
                person["id"], subject=f"Job {n}", start="2026-11-24T08:00:00", end="2026-11-24T09:00:00"
            )
            if n % 2:
                event = graph.update_event(person["id"], event["id"], subject=f"Job {n} (moved)")
            expected[appointment_guid(TENANT_ID, person["id"], event["id"])] = event["subject"]
            for _ in range(3):
                services.queues.send(
                    NOTIFICATIONS_QUEUE, message(person["id"], event["id"], "updated", event["changeKey"])
                )
    env = settings_env(azurite, graph.base_url, dime.base_url)
    workers = [start_worker(env) for _ in range(3)]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1]) for w in workers]
    assert sum(r["poisoned"] for r in results) == 0, results
    assert sum(r["handled"] for r in results) == 3 * len(expected)
    board = {guid: row["Subject"] for guid, row in dime.appointments.items()}
    assert board == expected
    assert dime.writes >= len(expected)


def test_a_lost_write_whose_clean_up_fails_is_undone_by_the_redelivery(azurite, graph, dime, services):
    """Issue 22, race 2 (seed 939629): as above, but the deleted event still answers GET with 200
    (Deleted Items) and instance A's clean-up fails transiently (its calendar check meets Graph
    503s), so the error leaves before the clean-up. The fact that A wrote lives on durably (its
    link, held as unproven): the redelivered message, with the same changeKey and no link of the
    winner's, proves the event is not in the calendar and deletes the appointment."""
    graph.deleted_get_status = 200
    person = add_mailbox(graph, services, mail="race2@contoso.com")
    event = graph.create_event(person["id"], subject="Job", start="2026-11-24T08:00:00", end="2026-11-24T09:00:00")
    first = asyncio.run(apply_notification(message(person["id"], event["id"], "created", event["changeKey"]), services))
    guid = appointment_guid(TENANT_ID, person["id"], event["id"])
    assert first.decision.action.value == "upsert" and guid in dime.appointments

    edited = graph.update_event(person["id"], event["id"], subject="Job (edited)")
    services.queues.send(NOTIFICATIONS_QUEUE, message(person["id"], event["id"], "updated", edited["changeKey"]))
    imports_before = len(dime.requests)
    dime.delay_next(3.0)
    worker = start_worker(settings_env(azurite, graph.base_url, dime.base_url))
    assert worker.stdin is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    wait_for(lambda: len(dime.requests) > imports_before, "instance A's import")

    graph.delete_event(person["id"], event["id"])
    deleted = asyncio.run(apply_notification(message(person["id"], event["id"], "deleted", None), services))
    assert deleted.decision.action.value == "delete"
    assert guid not in dime.appointments
    # A's clean-up proves membership with a calendarView: every attempt of its first try fails.
    graph.fail_next(count=4, status=503, path_contains="calendarView")

    out, _ = worker.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["poisoned"] == 0, result
    assert result["failed"] >= 1, "the clean-up's first try was meant to fail"
    assert guid not in dime.appointments, "the redelivered message left the lost write on the board"
    assert services.store.get_link(person["id"], event["id"]) is None


def two_technicians(graph, dime, services) -> tuple[dict, dict, str]:
    """tech7 and tech8, onboarded and Dime.Scheduler resources R7 and R8; one appointment planned
    for tech7 and placed in tech7's calendar."""
    tech7, tech8 = graph.add_user(mail="tech7@contoso.com"), graph.add_user(mail="tech8@contoso.com")
    for n, person in ((7, tech7), (8, tech8)):
        track(services, person)
        dime.board.add_resource(f"R{n}", person["mail"])
    guid = dime.board.plan("Order 8077", START, END, ["R7"])
    publish(planned(dime, guid), "created")
    work(services)
    assert len(ours(graph, tech7["id"])) == 1
    return tech7, tech8, guid


def apply_here(services, payload: dict) -> None:
    """Instance A: this process applies a publication itself (not through the shared queue, which
    the worker process would take it from)."""
    pub = parse_publication(payload, zone_named(services.settings.dime_time_zone))
    asyncio.run(apply_publication({"change": "updated", "publication": pub.to_message()}, services))


def instance_b(azurite, graph, dime, payload: dict) -> subprocess.Popen[str]:
    """Instance B: a worker process applying one publication from the queue."""
    publish(payload, "updated")
    worker = start_worker(settings_env(azurite, graph.base_url, dime.base_url))
    assert worker.stdin is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    return worker


def test_an_older_publication_losing_to_a_reassignment_leaves_no_event_behind(azurite, graph, dime, services):
    """Issue 22, race 1 (seed 972696). Instance B (a worker process) applies an older publication
    (renamed, still tech7's); its PATCH of tech7's event is held. Instance A (this process) applies
    the reassignment to tech8: it deletes tech7's event and saves the row. B's PATCH then finds the
    event gone. Before: B created a new event in tech7's calendar, lost the row's save, and its
    redelivery was refused as stale: the copy stayed. Now B records its intent first, loses that
    save instead, and creates nothing."""
    tech7, tech8, guid = two_technicians(graph, dime, services)
    [event7] = ours(graph, tech7["id"])
    dime.board.update(guid, subject="Order 8077 (changed)")
    older = planned(dime, guid)
    dime.board.update(guid, resources=["R8"])
    newer = planned(dime, guid)

    graph.delay_next(3.0, path_contains=event7["id"])  # B's PATCH is held (then applied: a 404)
    worker = instance_b(azurite, graph, dime, older)
    wait_for(lambda: any(r.method == "PATCH" for r in graph.requests), "instance B's PATCH")
    apply_here(services, newer)
    assert ours(graph, tech7["id"]) == []

    out, _ = worker.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["poisoned"] == 0, result
    assert ours(graph, tech7["id"]) == [], "the older publication left a copy in the previous assignee's calendar"
    assert [e["subject"] for e in ours(graph, tech8["id"])] == ["Order 8077 (changed)"]


def test_a_create_that_loses_its_row_and_cannot_undo_it_is_undone_by_the_stale_redelivery(
    azurite, graph, dime, services
):
    """Issue 22, race 1, the other interleaving. The appointment is tech8's; B (a worker process)
    applies a publication that adds tech7: it records its intent in tech7's row and POSTs, the POST
    held. A (this process) applies the newer publication (tech8 alone): nothing of ours is in tech7's
    calendar yet, so it clears the intent. B's POST lands: B loses the row's save, and its undo
    (DELETE) meets Graph 503s. B writes its intent back and raises; the redelivery, now stale,
    finds the event by its tag and deletes it. (Before: B's create was saved in a row the newer
    publication knew nothing of, and the event stayed in tech7's calendar.)"""
    tech7, tech8, guid = two_technicians(graph, dime, services)
    dime.board.update(guid, resources=["R8"])
    publish(planned(dime, guid), "updated")
    work(services)
    assert ours(graph, tech7["id"]) == [] and len(ours(graph, tech8["id"])) == 1
    dime.board.update(guid, resources=["R7", "R8"])
    older = planned(dime, guid)
    dime.board.update(guid, resources=["R8"], subject="Order 8077 (changed)")
    newer = planned(dime, guid)

    graph.reset_requests()
    graph.delay_next(3.0, path_contains=f"/users/{tech7['id']}/events")  # B's POST: held, then applied
    worker = instance_b(azurite, graph, dime, older)
    wait_for(lambda: any(r.method == "POST" and tech7["id"] in r.path for r in graph.requests), "instance B's POST")
    apply_here(services, newer)  # A: tech7 has no event of ours yet; tech8's is renamed
    assert ours(graph, tech7["id"]) == []
    # B's POST lands next; the DELETE that would undo it fails (every retry of the first delivery).
    graph.fail_next(count=4, status=503, path_contains=f"/users/{tech7['id']}/events/")

    out, _ = worker.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["poisoned"] == 0, result
    assert ours(graph, tech7["id"]) == [], "a lost create stayed in the calendar of someone no longer planned"
    assert [e["subject"] for e in ours(graph, tech8["id"])] == ["Order 8077 (changed)"]
