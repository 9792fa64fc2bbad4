"""Several instances at once: nothing may rely on a lock inside one process.

Flex Consumption runs the app on several instances that share the queues and the storage
account; the per-event lock in `sync_event` serialises work within one process only. Across
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

from shared.core.ids import appointment_guid
from shared.names import NOTIFICATIONS_QUEUE
from shared.usecases.outlook_to_dime.sync_event import apply_notification
from tests.conftest import TENANT_ID, settings_env
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
