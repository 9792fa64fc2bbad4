"""Figures for recurring series: what one master notification costs.

Graph notifies an edit of a series, or of one instance, on the master only, so the worker reads
the master and lists its instances over the sync window. Measured against a real Azurite and the
loopback fakes (one run, indicative):
  * a 5-occurrence daily stand-up: first sight, an unchanged replay, a series edit, one moved instance;
  * a daily series over the whole window (30 days back, 180 forward): the same, ~211 instances.

    .venv/bin/python scripts/bench_series.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.usecases.outlook_to_dime.notification_batch import apply_notification  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402
from tests.conftest import DIME_API_KEY, TENANT_ID, clean_storage, make_services, settings_env  # noqa: E402
from tests.fakes import FakeDime, FakeGraph  # noqa: E402
from tests.linkseed import add_mailbox  # noqa: E402


def notify(services, graph, dime, mailbox: str, master_id: str) -> tuple[int, int, int, float]:
    """One master notification through the worker: (Graph HTTP requests, $batch members, Dime writes, ms)."""
    graph.reset_requests()
    dime.reset_calls()
    message = {"mailboxId": mailbox, "eventId": master_id, "changeType": "updated", "changeKey": None}
    started = time.perf_counter()
    asyncio.run(apply_notification(message, services))
    return len(graph.requests), len(graph.batch_members), dime.writes, (time.perf_counter() - started) * 1000


def scenario(services, graph, dime, label: str, start: datetime, count: int) -> list[tuple]:
    person = add_mailbox(graph, services)
    master = graph.create_series(person["id"], "Stand-up", start, start + timedelta(minutes=15), count=count)
    rows = [(f"{label}: first sight", *notify(services, graph, dime, person["id"], master["id"]))]
    rows.append((f"{label}: unchanged (a duplicate)", *notify(services, graph, dime, person["id"], master["id"])))
    graph.update_event(person["id"], master["id"], subject="Stand-up (new room)")
    rows.append((f"{label}: whole series edited", *notify(services, graph, dime, person["id"], master["id"])))
    one = graph.instances(person["id"], master["id"])[2]
    moved = datetime.fromisoformat(one["start"]["dateTime"][:19]) + timedelta(hours=1)
    graph.update_instance(person["id"], one["id"], start=moved, end=moved + timedelta(minutes=15))
    rows.append((f"{label}: one instance moved", *notify(services, graph, dime, person["id"], master["id"])))
    return rows


def main() -> None:
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0, tzinfo=None)
    azurite = start_azurite()
    try:
        with FakeGraph(tenant_id=TENANT_ID, seed=1) as graph, FakeDime(api_key=DIME_API_KEY) as dime:
            services = make_services(settings_env(azurite, graph.base_url, dime.base_url))
            clean_storage(services)
            rows = scenario(services, graph, dime, "5-occurrence series", today + timedelta(days=1), 5)
            rows += scenario(services, graph, dime, "daily, whole window", today - timedelta(days=30), 211)
    finally:
        azurite.stop()
    print(f"{'one master notification':<48} {'Graph HTTP':>10} {'members':>8} {'Dime writes':>11} {'ms':>8}")
    for label, requests, members, writes, ms in rows:
        print(f"{label:<48} {requests:>10} {members:>8} {writes:>11} {ms:>8.0f}")


if __name__ == "__main__":
    main()
