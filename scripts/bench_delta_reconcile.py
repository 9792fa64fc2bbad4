"""Figures for delta and reconcile: Graph requests and seconds on idle workloads.

Starts a real Azurite and the loopback fakes of Graph and Dime.Scheduler, then measures:
  * an idle delta run over 100 mailboxes (after their first full round),
  * reconcile over 1,000 links (one mailbox), 10,000 links (10 mailboxes x 1,000, concurrently)
    and 10,000 links in a single mailbox.
Links are seeded directly (fake events + link rows holding the right changeKey and content hash),
so every reconcile here is a "nothing changed" pass: it must make zero Dime.Scheduler writes.

    .venv/bin/python scripts/bench_delta_reconcile.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.usecases.outlook_to_dime.delta_sync import run_delta  # noqa: E402
from shared.usecases.outlook_to_dime.reconcile import run_reconcile  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402
from tests.conftest import DIME_API_KEY, TENANT_ID, clean_storage, make_services, settings_env  # noqa: E402
from tests.fakes import FakeDime, FakeGraph  # noqa: E402
from tests.linkseed import add_mailbox, seed_linked_events  # noqa: E402


def measure(graph, dime, work):
    graph.reset_requests()
    dime.reset_calls()
    started = time.perf_counter()
    runs = asyncio.run(work())
    seconds = time.perf_counter() - started
    outcomes = sorted({run.outcome for run in runs})
    return len(graph.requests), len(graph.batch_members), dime.writes, seconds, outcomes


def main() -> None:
    rows = []
    azurite = start_azurite()
    try:
        with FakeGraph(tenant_id=TENANT_ID, seed=1) as graph, FakeDime(api_key=DIME_API_KEY) as dime:
            services = make_services(settings_env(azurite, graph.base_url, dime.base_url))

            clean_storage(services)
            people = [add_mailbox(graph, services) for _ in range(100)]
            for person in people:
                for n in range(5):
                    graph.create_event(
                        person["id"], subject=f"Job {n}", start=f"2026-11-2{n}T09:00:00", end=f"2026-11-2{n}T10:00:00"
                    )
            first = measure(graph, dime, lambda: run_delta(services))
            rows.append(("delta, first full round, 100 mailboxes x 5 events", *first))
            idle = measure(graph, dime, lambda: run_delta(services))
            rows.append(("delta, idle, 100 mailboxes", *idle))

            for mailboxes, per_mailbox in ((1, 1000), (10, 1000), (1, 10000)):
                clean_storage(services)
                for _ in range(mailboxes):
                    seed_linked_events(graph, services, add_mailbox(graph, services), per_mailbox)
                result = measure(graph, dime, lambda: run_reconcile(services))
                label = f"reconcile, {mailboxes * per_mailbox:,} links ({mailboxes} x {per_mailbox:,})"
                rows.append((label, *result))
    finally:
        azurite.stop()

    print(f"{'workload':<52} {'Graph HTTP':>10} {'members':>8} {'Dime writes':>11} {'seconds':>8}  outcome")
    for label, requests, members, writes, seconds, outcomes in rows:
        print(f"{label:<52} {requests:>10} {members:>8} {writes:>11} {seconds:>8.2f}  {','.join(outcomes)}")


if __name__ == "__main__":
    main()
