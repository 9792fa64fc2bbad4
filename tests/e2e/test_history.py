"""History counters over real Azurite: counts equal the outcomes written, by several writers at once,
for a handful of requests (one per write or batch, one to draw)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import function_app
from shared.adapters.storage import history_store as history_module
from shared.adapters.storage.history_store import history_store
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.transactions import Status, Transaction, new_transaction_id
from shared.names import HISTORY_TABLE
from tests.conftest import make_services, settings_env
from tests.e2e.test_transactions_admin import get
from tests.storage_counter import StorageCounter

DIRECTIONS = ("outlook-to-dime", "dime-to-outlook")


def tx(n: int, status: Status, when: datetime) -> Transaction:
    return Transaction(
        id=new_transaction_id(when),
        mailbox_id=f"mailbox-{n % 3}",
        direction=DIRECTIONS[n % 2],
        operation="upsert",
        status=status,
        created_at=when.isoformat(),
        error_code="DIME_REJECTED" if status is Status.FAILED else None,
    )


def totals(history: dict) -> Counter:
    """(direction, outcome) → count over the last 24 hours."""
    found: Counter = Counter()
    for hour in history["hours"]:
        for direction in ("outlookToDime", "dimeToOutlook"):
            for outcome, n in hour[direction].items():
                found[direction, outcome] += n
    return found


def test_two_instances_writing_at_once_lose_no_count(services, azurite, graph, dime):
    """Two Services (two instances: own clients, own memory) in four threads each add, batch-add and
    resolve transactions at the same time; the status's history is exactly what they wrote."""
    other = make_services(settings_env(azurite, graph.base_url, dime.base_url))
    now = datetime.now(UTC)
    expected: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(8)

    def write(instance, worker: int) -> None:
        store = transaction_store(instance)
        start.wait()
        mine: Counter = Counter()
        for n in range(12):
            single = tx(worker * 100 + n, Status.FAILED if n % 3 == 0 else Status.SUCCEEDED, now)
            store.add(single)
            mine[single.direction, single.status] += 1
            if single.status is Status.FAILED and n % 2 == 0:  # a retry resolves it: one more outcome
                resolved = replace(single, status=Status.SUCCEEDED, updated_at=now.isoformat(), error_code=None)
                store.save(resolved)
                mine[resolved.direction, resolved.status] += 1
        batch = [tx(worker * 100 + 50 + n, Status.SUCCEEDED if n % 4 else Status.FAILED, now) for n in range(30)]
        batch.append(replace(batch[0], id=new_transaction_id(now), status=Status.SKIPPED))  # not counted
        store.add_many(batch)
        for row in batch:
            if row.status is not Status.SKIPPED:
                mine[row.direction, row.status] += 1
        with lock:
            expected.update(mine)

    threads = [threading.Thread(target=write, args=(inst, w)) for w, inst in enumerate([services, other] * 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    status, body = get(function_app.manage_status)
    assert status == 200
    keys = {"outlook-to-dime": "outlookToDime", "dime-to-outlook": "dimeToOutlook"}
    want = Counter({(keys[d], s.value): n for (d, s), n in expected.items()})
    assert totals(body["history"]) == want
    assert sum(want.values()) == 8 * (12 + 2 + 30)  # every write counted once
    today = body["history"]["days"][-1]
    assert today["outlookToDime"] == {
        "succeeded": want["outlookToDime", "succeeded"],
        "failed": want["outlookToDime", "failed"],
    }
    # one row per writer and day: 8 threads, each its own shard
    rows = list(services.store.table(HISTORY_TABLE).query_entities("", select=["RowKey"]))
    assert len(rows) == 8


def test_a_batch_costs_one_counter_request_and_drawing_costs_one_query(services):
    counter = StorageCounter.install()
    store = transaction_store(services)
    now = datetime.now(UTC)
    store.add(tx(0, Status.SUCCEEDED, now))  # tables provisioned, clients built

    counter.reset()
    store.add_many([tx(n, Status.SUCCEEDED, now) for n in range(6, 600, 6)])  # 99 rows, one partition
    assert counter.by_service().get("table", 0) == 1 + 1  # the batch, then one counter merge

    counter.reset()
    store.add_many([tx(n, Status.SKIPPED, now) for n in range(6, 60, 6)])
    assert counter.by_service().get("table", 0) == 1  # nothing counted: no counter request

    counter.reset()
    summary = history_store(services.store).summary(now)
    assert counter.by_service().get("table", 0) == 1
    assert summary["days"][-1]["outlookToDime"]["succeeded"] == 1 + 99


def test_a_failed_counter_write_fails_no_transaction_and_the_next_write_carries_it(services, monkeypatch):
    store = transaction_store(services)
    now = datetime.now(UTC)
    store.add(tx(0, Status.SUCCEEDED, now))
    real = history_module.HistoryStore.record

    def broken(self, transactions):
        table = self._table

        class Refusing:
            def __getattr__(self, name):
                if name in ("upsert_entity", "submit_transaction"):
                    raise RuntimeError("storage unavailable")
                return getattr(table, name)

        self._table = Refusing()
        try:
            real(self, transactions)
        finally:
            self._table = table

    monkeypatch.setattr(history_module.HistoryStore, "record", broken)
    store.add(tx(2, Status.SUCCEEDED, now))  # written, not counted yet
    monkeypatch.undo()
    assert len(list(store.of_mailbox("mailbox-2"))) == 1
    assert history_store(services.store).summary(now)["days"][-1]["outlookToDime"]["succeeded"] == 1

    store.add(tx(6, Status.SUCCEEDED, now + timedelta(seconds=1)))
    assert history_store(services.store).summary(now)["days"][-1]["outlookToDime"]["succeeded"] == 3


def test_the_retry_and_renewal_timers_leave_a_run_record_the_status_shows(services):
    import asyncio

    from shared.usecases.outlook_to_dime.subscriptions import renew_all
    from shared.usecases.retry import retry_due

    assert get(function_app.manage_status)[1]["timerRuns"] == {
        "retry": None,
        "renewal": None,
        "delta": None,
        "reconcile": None,
    }
    store = transaction_store(services)
    store.add(replace(tx(0, Status.FAILED, datetime.now(UTC)), error_code="DIME_REJECTED"))  # permanent: not due
    asyncio.run(retry_due(services))
    asyncio.run(renew_all(services))

    runs = get(function_app.manage_status)[1]["timerRuns"]
    assert runs["retry"]["kind"] == "retry" and runs["retry"]["outcome"] == "completed"
    assert runs["retry"]["changes"] == 1 and runs["retry"]["skipped"] == 1 and runs["retry"]["writes"] == 0
    assert runs["renewal"]["kind"] == "renewal" and runs["renewal"]["outcome"] == "completed"
    assert runs["renewal"]["startedAt"].endswith("Z") and runs["renewal"]["changes"] == 0
