"""Should the app use azure-data-tables' async client? 100 concurrent table point reads and 100
concurrent upserts against a real Azurite, two ways, back to back:

- what the app does: the sync `TableClient` (with the app's `environment_options`) through
  `asyncio.to_thread` (the default executor: min(32, cores + 4) threads);
- `azure.data.tables.aio.TableClient` (aiohttp) on the event loop;
- for reference, the sync client one call after another (no concurrency, no thread hand-off);
- the app's own adapters (links: `get_link`, `save_link`, etag-conditional): the sync `StateStore`
  through `asyncio.to_thread` (before issue 20) and `services.astore` (the aio adapters), with the
  app's environment options (a CA bundle named in the environment included).

Prints the median wall time of each round (of `ROUNDS`) and the process CPU per operation.
`.venv/bin/python scripts/bench_async_tables.py`
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.azurite import start_azurite  # noqa: E402

CONCURRENT = 100
ROUNDS = 15


def entity(n: int) -> dict[str, str]:
    return {"PartitionKey": "bench", "RowKey": f"row-{n:03d}", "Value": "x" * 200}


def seeded_table(connection_string: str, name: str) -> Any:
    """A sync table client (as the app builds it) over a new table holding the CONCURRENT rows."""
    from azure.data.tables import TableClient

    from shared.adapters.storage.clients import environment_options

    url = TableClient.from_connection_string(connection_string, name).url
    table = TableClient.from_connection_string(connection_string, name, **environment_options(url))
    table.create_table()
    for n in range(CONCURRENT):
        table.upsert_entity(entity(n))
    return table


async def with_threads(connection_string: str) -> dict[str, tuple[float, float]]:
    from azure.data.tables import UpdateMode

    table = seeded_table(connection_string, "threads")

    async def read_round() -> None:
        await asyncio.gather(*(asyncio.to_thread(table.get_entity, "bench", f"row-{n:03d}") for n in range(CONCURRENT)))

    async def upsert_round() -> None:
        await asyncio.gather(
            *(asyncio.to_thread(table.upsert_entity, entity(n), mode=UpdateMode.REPLACE) for n in range(CONCURRENT))
        )

    return {"point read": await timed(read_round), "upsert": await timed(upsert_round)}


async def sequential(connection_string: str) -> dict[str, tuple[float, float]]:
    """The sync client one call after another on one thread: the client's own cost, no thread hand-off."""
    from azure.data.tables import UpdateMode

    table = seeded_table(connection_string, "sequential")

    async def read_round() -> None:
        for n in range(CONCURRENT):
            table.get_entity("bench", f"row-{n:03d}")

    async def upsert_round() -> None:
        for n in range(CONCURRENT):
            table.upsert_entity(entity(n), mode=UpdateMode.REPLACE)

    return {"point read": await timed(read_round), "upsert": await timed(upsert_round)}


async def with_aio(connection_string: str) -> dict[str, tuple[float, float]]:
    from azure.data.tables import UpdateMode
    from azure.data.tables.aio import TableClient

    async with TableClient.from_connection_string(connection_string, "aio") as table:
        await table.create_table()
        for n in range(CONCURRENT):
            await table.upsert_entity(entity(n))

        async def read_round() -> None:
            await asyncio.gather(*(table.get_entity("bench", f"row-{n:03d}") for n in range(CONCURRENT)))

        async def upsert_round() -> None:
            await asyncio.gather(*(table.upsert_entity(entity(n), mode=UpdateMode.REPLACE) for n in range(CONCURRENT)))

        return {"point read": await timed(read_round), "upsert": await timed(upsert_round)}


async def timed(round_) -> tuple[float, float]:
    """Median wall seconds of a round of CONCURRENT operations, and CPU seconds per operation."""
    await round_()  # warm: connections opened, threads started
    walls = []
    cpu = time.process_time()
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await round_()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls), (time.process_time() - cpu) / (ROUNDS * CONCURRENT)


def app_services(connection_string: str) -> Any:
    from shared.services import Services
    from shared.settings import load_settings
    from tests.conftest import settings_env

    class Account:
        pass

    account = Account()
    account.connection_string = connection_string  # type: ignore[attr-defined]
    return Services(load_settings(settings_env(account, "http://127.0.0.1:9", "http://127.0.0.1:9")))


def link(n: int) -> Any:
    from shared.core.links import Link

    return Link("bench", f"AAMk/{n:03d}=", f"guid-{n}", "outlook", "ck", "hash", "a@example.com", "2026-12-06T12:00:00")


async def app_threads(connection_string: str) -> dict[str, tuple[float, float]]:
    """The app's sync StateStore (links: get_link, save_link) through asyncio.to_thread, as before issue 20."""
    store = app_services(connection_string).store
    saved = [store.save_link(link(n)) for n in range(CONCURRENT)]

    async def read_round() -> None:
        await asyncio.gather(*(asyncio.to_thread(store.get_link, "bench", s.event_id) for s in saved))

    async def save_round() -> None:
        fresh = await asyncio.gather(*(asyncio.to_thread(store.save_link, s) for s in saved))
        saved[:] = fresh

    return {"get_link": await timed(read_round), "save_link": await timed(save_round)}


async def app_aio(connection_string: str) -> dict[str, tuple[float, float]]:
    """The app's AsyncStateStore (services.astore): the same calls on the event loop."""
    services = app_services(connection_string)
    store = services.astore
    saved = list(await asyncio.gather(*(store.save_link(link(n + CONCURRENT)) for n in range(CONCURRENT))))

    async def read_round() -> None:
        await asyncio.gather(*(store.get_link("bench", s.event_id) for s in saved))

    async def save_round() -> None:
        saved[:] = await asyncio.gather(*(store.save_link(s) for s in saved))

    return {"get_link": await timed(read_round), "save_link": await timed(save_round)}


def main() -> None:
    azurite = start_azurite()
    try:
        results = {}
        for name, run in (
            ("to_thread(sync)", with_threads),
            ("aio", with_aio),
            ("sync, one by one", sequential),
            ("app: to_thread", app_threads),
            ("app: astore", app_aio),
        ):
            results[name] = asyncio.run(run(azurite.connection_string))
        print(f"{CONCURRENT} concurrent operations per round, median of {ROUNDS} rounds, against Azurite")
        print("client           | operation  | round (ms) | per op (ms) | CPU per op (ms)")
        for name, figures in results.items():
            for operation, (wall, cpu) in figures.items():
                print(
                    f"{name:16} | {operation:10} | {wall * 1000:10.1f} | {wall * 1000 / CONCURRENT:11.2f} | "
                    f"{cpu * 1000:15.2f}"
                )
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
