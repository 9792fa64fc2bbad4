"""The parts of `make bench` that say where the ceiling is: the floor of this machine, the backfill,
and scale-out over worker processes. `scripts/bench.py` calls these and prints them beside its
own figures (every throughput also as a share of the floor).

- **Floor**: the raw operations the real-time path needs, timed one after another against the same
  Azurite and fakes (a table point read, an upsert, a batch transaction of 100, a queue put, a
  receive of a page and a delete, one request to each fake), and the best changes/s a single
  worker could reach with the minimum number of calls per distinct change.
- **Backfill**: onboarding 10 mailboxes with 1,000 events each in the window: seconds, Graph and
  Dime.Scheduler requests, table operations (counted at the storage transport).
- **Scale-out**: the same notifications drained by 1, 2 and 4 worker processes (tests/worker_process.py)
  sharing one Azurite and the fakes, as Flex Consumption instances share a storage account:
  throughput, whether the board is exact, and the CPU share of Azurite and of the fakes.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.storage_counter import StorageCounter  # noqa: E402

DUPLICATES = 3  # notifications per distinct change (Graph commonly sends three per edit)
HOST_BATCH = 16  # host.json batchSize: one receive hands over up to this many messages
TICKS = os.sysconf("SC_CLK_TCK")


def median_seconds(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class Floor:
    ops: dict[str, float]  # operation -> median seconds
    per_notification: float  # changes/s: one queue message per notification (the design measured)
    batched: float  # changes/s: one message per POST of 20, one batch per table, one request per fake

    def rows(self) -> list[tuple[str, str]]:
        rows = [(f"floor: {name}", f"{seconds * 1000:.2f} ms") for name, seconds in self.ops.items()]
        rows.append(
            ("floor: changes/s, minimum calls with one message per notification", f"{self.per_notification:.1f}")
        )
        rows.append(("floor: changes/s, minimum calls with one message per POST, batched", f"{self.batched:.1f}"))
        return rows


def measure_floor(services: Any, graph: Any, dime: Any, repeat: int = 100) -> Floor:
    """Time each raw operation (median of `repeat`) and add up the minimum set per change."""
    import httpx
    from azure.data.tables import UpdateMode

    from shared.core.events import event_from_graph
    from shared.core.outlook_to_dime.appointments import appointment_for, upsert_call

    table = services.store.table("links")
    queue = services.queues.client("graph-notifications")
    entity = {"PartitionKey": "floor", "RowKey": "row", "Value": "x" * 200}
    table.upsert_entity(entity)
    ops: dict[str, float] = {}
    ops["table point read"] = median_seconds(lambda: table.get_entity("floor", "row"), repeat)
    ops["table upsert"] = median_seconds(lambda: table.upsert_entity(entity, mode=UpdateMode.REPLACE), repeat)
    counter = iter(range(10**9))

    def batch(size: int) -> None:
        n = next(counter)
        table.submit_transaction(
            [("upsert", {"PartitionKey": "floorbatch", "RowKey": f"{n}-{i}", "Value": "x" * 200}) for i in range(size)]
        )

    ops["table batch of 100 upserts"] = median_seconds(lambda: batch(100), max(5, repeat // 10))
    ops["table batch of 7 upserts"] = median_seconds(lambda: batch(7), max(5, repeat // 4))
    body = json.dumps({"mailboxId": "m" * 36, "eventId": "e" * 150, "changeType": "updated", "changeKey": "k" * 20})
    ops["queue put"] = median_seconds(lambda: queue.send_message(body.encode()), repeat)
    received: list[Any] = []
    ops["queue receive (a page of up to 16)"] = median_seconds(
        lambda: received.extend(queue.receive_messages(messages_per_page=16, max_messages=16, visibility_timeout=60)),
        max(3, repeat // 16),
    )
    pending = iter(received)
    ops["queue delete"] = median_seconds(lambda: queue.delete_message(next(pending)), min(repeat, len(received)))
    queue.clear_messages()

    person = graph.add_user(mail="floor@contoso.com")
    event = graph.create_event(person["id"], subject="Floor", start="2026-11-24T08:00:00", end="2026-11-24T09:00:00")
    with httpx.Client() as client:
        url = f"{graph.base_url}/v1.0/users/{person['id']}/events/{event['id']}"
        headers = {"Authorization": "Bearer floor", "Prefer": 'IdType="ImmutableId", outlook.timezone="UTC"'}
        ops["Graph: one GET of an event"] = median_seconds(lambda: client.get(url, headers=headers), repeat)
        appointment = appointment_for(
            event_from_graph(graph.get_event(person["id"], event["id"])),
            "0" * 8 + "-0000-4000-8000-" + "0" * 12,
            "floor@contoso.com",
            private_details=False,
            zone=services.settings.dime_zone,
        )
        call = upsert_call(appointment)
        ops["Dime.Scheduler: one /import of one call"] = median_seconds(
            lambda: client.post(f"{dime.base_url}/import", json=[call], headers={"X-API-KEY": dime.api_key}), repeat
        )
    # Per distinct change, notified DUPLICATES times, one message each: a put, a share of a
    # receive and a delete per message; a link read per message; one Graph GET, one import, the
    # link and a success transaction written once.
    per_notification = (
        DUPLICATES * (ops["queue put"] + ops["queue delete"] + ops["queue receive (a page of up to 16)"] / HOST_BATCH)
        + DUPLICATES * ops["table point read"]
        + 2 * ops["table upsert"]
        + ops["Graph: one GET of an event"]
        + ops["Dime.Scheduler: one /import of one call"]
    )
    # One message per POST of 20 notifications (~7 distinct changes, new to us): per POST a put,
    # a receive, a delete, a link query (as a point read), two $batch requests (as one GET each:
    # the reads, and the calendarView proofs that the events are in the primary calendar, which a
    # GET 200 cannot give, graph.md), one /import, and three table batches of 7 operations: the
    # Outlook-origin marks (written before the import, or Dime.Scheduler's publication of the new
    # appointments would come back to Outlook), the links and the success transactions.
    changes_per_post = 20 / DUPLICATES
    per_post = (
        ops["queue put"]
        + ops["queue receive (a page of up to 16)"]
        + ops["queue delete"]
        + ops["table point read"]
        + 2 * ops["Graph: one GET of an event"]
        + ops["Dime.Scheduler: one /import of one call"]
        + 3 * ops["table batch of 7 upserts"]
    )
    return Floor(ops, 1 / per_notification, changes_per_post / per_post)


def fake_costs(*fakes: Any) -> list[tuple[str, str]]:
    """Each fake's cost per request (so a fake that became the bottleneck shows)."""
    rows = []
    for fake in fakes:
        requests, seconds, cpu = fake.stats.snapshot()
        if requests:
            rows.append(
                (
                    f"{type(fake).__name__}: requests, time per request, CPU per request",
                    f"{requests}, {seconds / requests * 1000:.2f} ms, {cpu / requests * 1000:.2f} ms",
                )
            )
    return rows


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# ------------------------------------------------------------------------------------ backfill


def bench_backfill(
    azurite: Any, mailboxes: int = 10, events: int = 1000, profile: str = "loopback"
) -> dict[str, float]:
    """Onboard `mailboxes` people with `events` events each in the window (a full delta round per
    mailbox, as the onboarding resync runs it, the mailboxes concurrently like one host batch),
    the services behind the delaying proxies of `profile` (scripts/latency_proxy.py)."""
    from scripts.latency_proxy import routed
    from shared.usecases.resync import resync
    from tests.conftest import TENANT_ID, clean_storage, make_services, settings_env
    from tests.fakes import FakeDime, FakeGraph
    from tests.linkseed import add_mailbox

    counter = StorageCounter.install()
    with (
        FakeGraph(tenant_id=TENANT_ID, seed=3) as graph,
        FakeDime(api_key="test-api-key") as dime,
        routed(profile, azurite, graph=graph, dime=dime) as storage,
    ):
        services = make_services(settings_env(storage, graph.base_url, dime.base_url))
        clean_storage(services)
        base = datetime.now(UTC).replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(days=1)
        people = []
        for m in range(mailboxes):
            person = add_mailbox(graph, services, mail=f"onboard{m}@contoso.com")
            people.append(person)
            for n in range(events):
                start = base + timedelta(days=n // 10, hours=n % 10)
                graph.create_event(
                    person["id"],
                    subject=f"Job {n}",
                    start=start.replace(tzinfo=None).isoformat(),
                    end=(start + timedelta(minutes=45)).replace(tzinfo=None).isoformat(),
                )
        graph.reset_requests()
        dime.reset_calls()
        graph_before, dime_before = graph.stats.snapshot(), dime.stats.snapshot()
        counter.reset()
        azurite_before, own_before = process_cpu_seconds(azurite.process.pid), time.process_time()

        async def onboard() -> None:
            await asyncio.gather(
                *(resync({"mailboxId": p["id"], "reason": "onboarded"}, services, budget_seconds=3600) for p in people)
            )

        started = time.perf_counter()
        asyncio.run(onboard())
        elapsed = time.perf_counter() - started
        azurite_cpu, own_cpu = (
            process_cpu_seconds(azurite.process.pid) - azurite_before,
            time.process_time() - own_before,
        )
        total = mailboxes * events
        on_board = len(dime.appointments)
        assert on_board == total, f"backfill put {on_board} of {total} appointments on the board"
        graph_after, dime_after = graph.stats.snapshot(), dime.stats.snapshot()
        return {
            "events": total,
            "seconds": elapsed,
            "events_per_second": total / elapsed,
            "graph_requests": len(graph.requests),
            "graph_batch_members": len(graph.batch_members),
            "dime_requests": len(dime.requests),
            "table_operations": counter.by_service().get("table", 0),
            "fakes_cpu_seconds": graph_after[2] - graph_before[2] + dime_after[2] - dime_before[2],
            "azurite_cpu_seconds": azurite_cpu,
            "process_cpu_seconds": own_cpu,  # the app and the fakes (one process)
        }


# ----------------------------------------------------------------------------------- scale-out


def start_workers(env: dict[str, str], count: int, batch_size: int | None = None) -> list[subprocess.Popen[str]]:
    """`count` worker processes, each delivering up to `batch_size` messages at once (host.json's
    batchSize when None)."""
    # The host's newBatchThreshold follows (half of batchSize, as host.json sets it).
    extra = {"HOST_BATCH_SIZE": str(batch_size), "HOST_NEW_BATCH_THRESHOLD": str(batch_size // 2)} if batch_size else {}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process", "drain"],
            cwd=ROOT,
            env={**os.environ, "WORKER_SETTINGS": json.dumps(env), **extra},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"a worker process did not start: {line!r}")
    return workers


def bench_scale_out(
    azurite: Any,
    processes: int,
    mailboxes: int,
    changes_per_mailbox: int,
    post_items,
    profile: str = "loopback",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Notifications for `mailboxes` x `changes_per_mailbox` distinct changes (x3) enqueued through
    the webhook, then drained by `processes` worker processes started together, each delivering up
    to `batch_size` messages at once (host.json's when None), every request behind the delaying
    proxies of `profile`. `post_items(graph, services, mailboxes, changes)` creates the workload
    and posts it; it returns the mailbox ids."""
    import function_app
    from scripts.latency_proxy import routed
    from shared.core.ids import appointment_guid
    from tests.conftest import TENANT_ID, clean_storage, make_services, settings_env
    from tests.fakes import FakeDime, FakeGraph

    with (
        FakeGraph(tenant_id=TENANT_ID, seed=4) as graph,
        FakeDime(api_key="test-api-key") as dime,
        routed(profile, azurite, graph=graph, dime=dime) as storage,
    ):
        env = settings_env(storage, graph.base_url, dime.base_url)
        services = make_services(env)
        clean_storage(services)
        function_app.services = lambda: services
        workers = start_workers(env, processes, batch_size)
        mailbox_ids = post_items(graph, services, mailboxes, changes_per_mailbox)
        graph_before, dime_before = graph.stats.snapshot(), dime.stats.snapshot()
        azurite_before = process_cpu_seconds(azurite.process.pid)
        started = time.time()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, _ = worker.communicate(timeout=1800)
            results.append(json.loads(out.strip().splitlines()[-1]))
        finished = max(r["last_done"] for r in results)
        elapsed = finished - started
        azurite_cpu = process_cpu_seconds(azurite.process.pid) - azurite_before
        graph_after, dime_after = graph.stats.snapshot(), dime.stats.snapshot()
        board = dime.appointments
        expected = {}
        for mailbox_id in mailbox_ids:
            for event in graph.events(mailbox_id):
                expected[appointment_guid(TENANT_ID, mailbox_id, event["id"])] = event["subject"]
        distinct = len(expected)
        exact = {guid: row.get("Subject") for guid, row in board.items()} == expected
        return {
            "processes": processes,
            "seconds": elapsed,
            "changes_per_second": distinct / elapsed,
            "exact": exact,
            "poisoned": sum(r["poisoned"] for r in results),
            "azurite_cpu_share": azurite_cpu / elapsed,
            "workers_cpu_share": sum(r["cpu_seconds"] for r in results) / elapsed,
            "fakes_cpu_share": (graph_after[2] - graph_before[2] + dime_after[2] - dime_before[2]) / elapsed,
            "storage_requests": sum(r["storage_requests"] for r in results),
            "workers_cpu_per_change": sum(r["cpu_seconds"] for r in results) / distinct,
            "distinct": distinct,
        }
