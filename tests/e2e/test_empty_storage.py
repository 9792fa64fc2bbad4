"""The app on an EMPTY storage account: no set-up script, no table or queue created by the tests.

A fresh Azurite (not the session's) stands in for a new storage account or a restarted
in-memory Azurite: onboarding, the webhook, the queue worker, /status, the retry timer and the
poison-poison drain must all work, creating what they need on first use.
"""

from __future__ import annotations

import httpx
import pytest

from shared.adapters.storage.transactions_store import transaction_store
from shared.core.transactions import ErrorCode
from shared.names import ALL_QUEUES, ALL_TABLES, NOTIFICATIONS_QUEUE, POISON_POISON_QUEUES
from tests.azurite import start_azurite
from tests.conftest import settings_env
from tests.runner import LocalRunner, build_services


@pytest.fixture
def empty_azurite():
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture
def runner(empty_azurite, graph, dime, monkeypatch):
    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)
    runner = LocalRunner()
    env = settings_env(
        empty_azurite,
        graph.base_url,
        dime.base_url,
        NOTIFICATION_URL=runner.url("notifications"),
        LIFECYCLE_NOTIFICATION_URL=runner.url("lifecycle"),
    )
    runner.services = build_services(env, clock=runner.clock)
    with runner:
        yield runner
    client.close()


def existing(runner: LocalRunner) -> tuple[set[str], set[str]]:
    tables = {t.name for t in runner.services.store._service.list_tables()}
    queues = {q.name for q in runner.services.queues._service.list_queues()}
    return tables, queues


def test_everything_works_from_an_empty_account_and_provisions_itself(runner, graph, dime):
    assert existing(runner) == (set(), set())  # truly empty: nothing created behind the app's back

    person = graph.add_user(mail="jane@contoso.com")
    assert runner.request("PUT", f"manage/resources/{person['id']}")[0] == 201
    graph.auto_notify = True
    graph.create_event(person["id"], subject="First", start="2026-11-24T09:00:00", end="2026-11-24T10:00:00")
    assert set(graph.flush_notifications()) == {202}
    runner.drain()
    assert [a["Subject"] for a in dime.appointments.values()] == ["First"]

    tables, queues = existing(runner)
    assert tables == set(ALL_TABLES) and queues == set(ALL_QUEUES)

    status, body = runner.request("GET", "manage/status")
    assert status == 200 and set(POISON_POISON_QUEUES) <= set(body["queues"])


def test_status_and_retry_timer_on_an_empty_account(runner):
    assert runner.request("GET", "manage/status")[0] == 200
    runner.fire("retry_failed")
    assert list(transaction_store(runner.services).failed()) == []


def test_poison_poison_messages_become_failed_transactions(runner):
    poison_poison = NOTIFICATIONS_QUEUE + "-poison-poison"
    runner.services.queues.send(poison_poison, {"mailboxId": "m1", "eventId": "e1", "changeType": "updated"})
    runner.services.queues.send_raw(poison_poison, b"not json at all")
    assert runner.request("GET", "manage/status")[1]["queues"][poison_poison] == 2

    runner.fire("retry_failed")

    assert runner.services.queues.depth(poison_poison) == 0
    failed = list(transaction_store(runner.services).failed())
    assert len(failed) == 2 and {t.error_code for t in failed} == {ErrorCode.POISON_MESSAGE.value}
    assert {t.mailbox_id for t in failed} == {"m1", "unknown"}
    assert all(poison_poison in t.message for t in failed)


def test_storage_emptied_under_a_running_process_provisions_again(runner, graph, dime):
    """A restarted in-memory Azurite (or an emptied account) while the process keeps running."""
    person = graph.add_user(mail="jane@contoso.com")
    assert runner.request("PUT", f"manage/resources/{person['id']}")[0] == 201
    runner.drain()
    store, queues = runner.services.store._service, runner.services.queues._service
    for table in list(store.list_tables()):
        store.delete_table(table.name)
    for queue in list(queues.list_queues()):
        queues.delete_queue(queue.name)

    assert runner.request("PUT", f"manage/resources/{person['id']}")[0] == 201  # the resource row was lost too
    graph.auto_notify = True
    graph.create_event(person["id"], subject="After", start="2026-11-24T09:00:00", end="2026-11-24T10:00:00")
    assert set(graph.flush_notifications()) == {202}
    runner.drain()

    assert "After" in [a["Subject"] for a in dime.appointments.values()]
    assert existing(runner) == (set(ALL_TABLES), set(ALL_QUEUES))
