"""CPU and wall time per planner change of the Dime.Scheduler → Outlook worker, on one event loop.

The fakes (Graph, Dime.Scheduler) run in a child process and Azurite in its own, so the process
CPU measured here (`time.process_time`, every thread of this process) is the app's alone: the
worker, its adapters and their threads (the `asyncio.to_thread` pool, where it is used). One
`asyncio.run` holds the whole run, as the Functions host keeps one loop; publications are handled
16 at a time (host.json's queue batchSize). Rounds: every appointment created (a Graph POST each),
then the same publications again (duplicates: rows read, nothing written), then every appointment
moved (a PATCH and the calendar proof each).

    .venv/bin/python scripts/bench_dime_async.py [appointments]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.azurite import start_azurite  # noqa: E402

PEOPLE = 4
CONCURRENT = 16


def fakes(connection: Any, count: int) -> None:
    """The child: the fakes, seeded with people and `count` appointments (twice: planned, moved)."""
    from tests.conftest import TENANT_ID
    from tests.fakes import FakeDime, FakeGraph

    with FakeGraph(tenant_id=TENANT_ID) as graph, FakeDime() as dime:
        people = [graph.add_user(mail=f"person{n}@contoso.com") for n in range(PEOPLE)]
        for n, person in enumerate(people):
            dime.board.add_resource(f"R-{n}", person["mail"])
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
        guids = [
            dime.board.plan(
                f"Order {n}",
                start + timedelta(hours=n % 50),
                start + timedelta(hours=n % 50, minutes=30),
                [f"R-{n % PEOPLE}"],
            )
            for n in range(count)
        ]
        planned = [dime.board.payload(dime.board.appointments[g]) for g in guids]
        for g in guids:
            dime.board.update(g, start=start - timedelta(hours=1), end=start - timedelta(minutes=30))
        moved = [dime.board.payload(dime.board.appointments[g]) for g in guids]
        connection.send((graph.base_url, dime.base_url, people, planned, moved))
        connection.recv()  # until the parent is done


async def rounds(services: Any, rounds_: list[tuple[str, list[dict[str, Any]]]]) -> list[tuple[str, float, float, int]]:
    from shared.usecases.dime_to_outlook.place_appointment import apply_publication

    gate = asyncio.Semaphore(CONCURRENT)

    async def one(message: dict[str, Any]) -> None:
        async with gate:
            await apply_publication(message, services)

    results = []
    for label, messages in rounds_:
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(m) for m in messages))
        results.append((label, time.perf_counter() - wall, time.process_time() - cpu, len(messages)))
    return results


def main() -> None:
    from shared.core.dime_to_outlook.publication import parse_publication, zone_named
    from shared.core.resources import resource_from_user
    from tests.conftest import clean_storage, make_services, settings_env

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=fakes, args=(child, count + 20), daemon=True)
    process.start()
    graph_url, dime_url, people, planned, moved = parent.recv()
    azurite = start_azurite()
    try:
        services = make_services(settings_env(azurite, graph_url, dime_url))
        clean_storage(services)
        for person in people:
            services.store.put_resource(resource_from_user(person, services.settings.default_consent))
        zone = zone_named(services.settings.dime_time_zone)
        now = datetime.now(UTC).isoformat()

        def messages(payloads: list[dict[str, Any]], change: str) -> list[dict[str, Any]]:
            pubs = [parse_publication(p, zone, by_id=True) for p in payloads]
            return [{"change": change, "publication": p.to_message(), "receivedAt": now} for p in pubs]

        warm, created, moves = (
            messages(planned[:20], "created"),
            messages(planned[20:], "created"),
            messages(moved[20:], "updated"),
        )
        results = asyncio.run(
            rounds(services, [("warm-up", warm), ("created", created), ("duplicates", created), ("moved", moves)])
        )
        print(f"{count} appointments, {CONCURRENT} at a time, one event loop; fakes in another process")
        print("round      | wall (s) | changes/s | CPU per change (ms)")
        for label, wall, cpu, n in results[1:]:
            print(f"{label:10} | {wall:8.2f} | {n / wall:9.1f} | {cpu * 1000 / n:19.2f}")
    finally:
        parent.send("done")
        azurite.stop()


if __name__ == "__main__":
    main()
