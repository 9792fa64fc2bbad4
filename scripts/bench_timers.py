"""The delta timer at tenant scale: 2,000 onboarded, idle mailboxes, before and after the fan-out.

    .venv/bin/python scripts/bench_timers.py [--mailboxes 2000] [--graph-delay 0.1] [--processes 1 2]

Against a fresh Azurite and FakeGraph (every Graph request answered only after --graph-delay
seconds, 100 ms by default, standing in for Graph's real latency; Azurite itself is not delayed).
Idle: every mailbox has been through a first delta round already, so its delta answers no change
(one GET returning a deltaLink).

- before: today's path until this change, `run_delta` (every mailbox inside the timer invocation,
  MAILBOX_CONCURRENCY at a time, on the one instance that holds the timer): the invocation's time
  is also the time until every mailbox is done; more processes cannot help a singleton timer.
- after: the `delta_timer` function (it lists the directory and sends one message per 25
  mailboxes): (a) how long the invocation takes; (b) how long until every mailbox is done, with 1
  and 2 worker processes (tests/worker_process.py, as Flex Consumption instances) delivering the
  chunk queue, counted from the timer's start.

Each figure checks its own work: every mailbox has a delta run record newer than the run's start.
What limits the time is printed beside it: the CPU the workers and Azurite used (the "floor" is
that CPU spread over every core of this machine, with nothing else running) and the load average
(other processes on the machine take their share of the same cores).
Goal (issue 20): the timer returns within 10 s; all mailboxes done within 40 s with 2 processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench_scale import process_cpu_seconds, start_workers  # noqa: E402


def seed(graph: Any, services: Any, count: int) -> list[str]:
    """`count` onboarded mailboxes, written 100 to a table transaction (the resources partition)."""
    from shared.adapters.storage.tables import _resource_entity
    from shared.core.resources import resource_from_user
    from shared.names import RESOURCES_TABLE

    resources = [
        resource_from_user(graph.add_user(mail=f"idle{n}@contoso.com"), services.settings.default_consent)
        for n in range(count)
    ]
    table = services.store.table(RESOURCES_TABLE)
    for start in range(0, count, 100):
        table.submit_transaction([("create", _resource_entity(r)) for r in resources[start : start + 100]])
    return [r.object_id for r in resources]


def delta_runs_since(services: Any, mailbox_ids: list[str], since: datetime) -> int:
    """How many of the mailboxes have a delta run record that started at or after `since`."""
    from shared.names import SYNCSTATE_TABLE

    rows = services.store.table(SYNCSTATE_TABLE).query_entities(
        "RowKey eq @row", parameters={"row": "delta-run"}, select=["PartitionKey", "StartedAt", "Outcome"]
    )
    wanted = set(mailbox_ids)
    return sum(
        1
        for row in rows
        if row["PartitionKey"] in wanted
        and datetime.fromisoformat(str(row["StartedAt"])) >= since
        and row.get("Outcome") == "completed"
    )


def before(services: Any, mailbox_ids: list[str], azurite: Any) -> dict[str, Any]:
    from shared.usecases.outlook_to_dime.delta_sync import run_delta

    since = datetime.now(UTC)
    azurite_before, own_before = process_cpu_seconds(azurite.process.pid), time.process_time()
    started = time.perf_counter()
    asyncio.run(run_delta(services))
    seconds = time.perf_counter() - started
    done = delta_runs_since(services, mailbox_ids, since)
    return {
        "timer_seconds": seconds,
        "all_done_seconds": seconds,
        "done": done,
        "app_cpu_seconds": time.process_time() - own_before,  # the app, and FakeGraph's threads beside it
        "azurite_cpu_seconds": process_cpu_seconds(azurite.process.pid) - azurite_before,
        "load": os.getloadavg()[0],
    }


def after(services: Any, env: dict[str, str], mailbox_ids: list[str], processes: int, azurite: Any) -> dict[str, Any]:
    from azure.functions.timer import TimerRequest

    import function_app
    from shared.names import MAILBOX_CHUNKS_QUEUE
    from tests.host import call_function

    workers = start_workers(env, processes)  # imported and connected before the clock starts
    azurite_before = process_cpu_seconds(azurite.process.pid)
    own_before = time.process_time()  # this process: FakeGraph's threads (and the timer's call)
    since = datetime.now(UTC)
    started = time.time()
    call_function(function_app.delta_timer, TimerRequest(past_due=False))
    timer_seconds = time.time() - started
    messages = services.queues.depth(MAILBOX_CHUNKS_QUEUE)
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [json.loads(w.communicate(timeout=1800)[0].strip().splitlines()[-1]) for w in workers]
    finished = max(r["last_done"] for r in results)
    fake_graph_cpu = time.process_time() - own_before
    return {
        "timer_seconds": timer_seconds,
        "messages": messages,
        "all_done_seconds": finished - started,
        "done": delta_runs_since(services, mailbox_ids, since),
        "failed_deliveries": sum(r["failed"] for r in results),
        "workers_cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "azurite_cpu_seconds": process_cpu_seconds(azurite.process.pid) - azurite_before,
        "fake_graph_cpu_seconds": fake_graph_cpu,
        "storage_requests": sum(r["storage_requests"] for r in results),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    import function_app
    from tests.azurite import start_azurite
    from tests.conftest import TENANT_ID, clean_storage, make_services, settings_env
    from tests.fakes import FakeDime, FakeGraph

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=2000)
    parser.add_argument("--graph-delay", type=float, default=0.1, help="seconds before FakeGraph answers a request")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-before", action="store_true")
    args = parser.parse_args()

    azurite = start_azurite()
    try:
        with FakeGraph(tenant_id=TENANT_ID, seed=5) as graph, FakeDime(api_key="test-api-key") as dime:
            env = settings_env(azurite, graph.base_url, dime.base_url)
            services = make_services(env)
            clean_storage(services)
            function_app.services = lambda: services
            mailbox_ids = seed(graph, services, args.mailboxes)
            from shared.usecases.outlook_to_dime.delta_sync import run_delta

            warm = time.perf_counter()
            asyncio.run(run_delta(services))  # each mailbox's first (fresh) round: idle from now on
            print(f"seeded {len(mailbox_ids)} mailboxes; first rounds (no delay) {time.perf_counter() - warm:.1f} s")
            graph.delay_next(args.graph_delay, count=10**9)  # every request from now on
            print(f"FakeGraph answers every request after {args.graph_delay * 1000:.0f} ms; Azurite undelayed")
            rows: list[tuple[str, str]] = []
            if not args.skip_before:
                b = before(services, mailbox_ids, azurite)
                rows.append(
                    ("before: timer invocation (= all mailboxes done, 1 instance)", f"{b['timer_seconds']:.1f} s")
                )
                rows.append(("before: mailboxes done", f"{b['done']} of {len(mailbox_ids)}"))
                rows.append(
                    (
                        "before: CPU s app (+ FakeGraph) / Azurite; load average after",
                        f"{b['app_cpu_seconds']:.1f} / {b['azurite_cpu_seconds']:.1f}; {b['load']:.1f}",
                    )
                )
            for processes in args.processes:
                a = after(services, env, mailbox_ids, processes, azurite)
                expected = math.ceil(len(mailbox_ids) / 25)
                rows.append((f"after, {processes} process(es): timer invocation", f"{a['timer_seconds']:.2f} s"))
                rows.append(
                    (f"after, {processes} process(es): messages sent", f"{a['messages']} (ceil(n/25) = {expected})")
                )
                rows.append((f"after, {processes} process(es): all mailboxes done", f"{a['all_done_seconds']:.1f} s"))
                rows.append((f"after, {processes} process(es): mailboxes done", f"{a['done']} of {len(mailbox_ids)}"))
                rows.append(
                    (
                        f"after, {processes} process(es): CPU s workers / Azurite; storage requests",
                        f"{a['workers_cpu_seconds']:.1f} / {a['azurite_cpu_seconds']:.1f}; {a['storage_requests']}",
                    )
                )
                rows.append(
                    (
                        f"after, {processes} process(es): CPU s of FakeGraph (this process; not in the floor)",
                        f"{a['fake_graph_cpu_seconds']:.1f}",
                    )
                )
                cpu = a["workers_cpu_seconds"] + a["azurite_cpu_seconds"]
                cores = os.cpu_count() or 1
                rows.append(
                    (
                        f"after, {processes} process(es): CPU per mailbox; floor on {cores} cores; load average after",
                        f"{cpu / len(mailbox_ids) * 1000:.1f} ms; {cpu / cores:.1f} s; {a['load']:.1f}",
                    )
                )
                if a["failed_deliveries"]:
                    rows.append((f"after, {processes} process(es): failed deliveries", str(a["failed_deliveries"])))
            width = max(len(name) for name, _ in rows)
            print(f"\ndelta timer, {len(mailbox_ids)} idle mailboxes, Graph delay {args.graph_delay * 1000:.0f} ms, "
                  f"{os.cpu_count()} cores")  # fmt: skip
            for name, value in rows:
                print(f"  {name.ljust(width)}  {value}")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
