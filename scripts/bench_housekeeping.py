"""Figures for the housekeeping the retry timer does: purging 10,000 expired tombstones.

Starts a real Azurite, seeds 10,000 Outlook → Dime.Scheduler tombstones over 10 mailboxes (plus
1,000 young ones that must stay), and runs the purge with the clock past TOMBSTONE_RETENTION_DAYS
until nothing is left to purge: one bounded batch (2,000 rows) per run, as the retry timer does
every 10 minutes. Table requests are counted on the wire (every round trip, paging included).
Then the cost of a run with nothing to purge beside 10,000 live appointments (the Dime.Scheduler
tombstone query filters the whole `eventlinks` table on the service's side).

    .venv/bin/python scripts/bench_housekeeping.py
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.adapters.storage.event_links_store import STATE_ROW  # noqa: E402
from shared.adapters.storage.syncstate_store import TOMBSTONE_PREFIX  # noqa: E402
from shared.core.outlook_to_dime.delta import digest  # noqa: E402
from shared.names import EVENT_LINKS_TABLE, SYNCSTATE_TABLE  # noqa: E402
from shared.services import Services  # noqa: E402
from shared.usecases.housekeeping import MAX_ROWS_PER_RUN, purge_expired  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402
from tests.conftest import clean_storage, make_services, settings_env  # noqa: E402
from tests.storage_counter import StorageCounter  # noqa: E402

MAILBOXES = 10
OLD_PER_MAILBOX = 1_000
YOUNG_PER_MAILBOX = 100
LIVE_APPOINTMENTS = 10_000


def seed(services: Services, prefix: str, count: int) -> None:
    table = services.store.table(SYNCSTATE_TABLE)
    now = datetime.now(UTC).isoformat()
    for m in range(MAILBOXES):
        rows = [
            {
                "PartitionKey": f"mailbox-{m:02d}",
                "RowKey": TOMBSTONE_PREFIX + digest(f"{prefix}-{n}"),
                "EventId": f"{prefix}-{n}",
                "DeletedAt": now,
            }
            for n in range(count)
        ]
        for start in range(0, len(rows), 100):
            table.submit_transaction([("upsert", row) for row in rows[start : start + 100]])


def seed_appointments(services: Services, count: int) -> None:
    """Live appointments (state row + one mailbox row each), the bulk the Dime.Scheduler
    tombstone query scans past."""
    table = services.store.table(EVENT_LINKS_TABLE)
    for n in range(count):
        guid = f"00000000-0000-4000-8000-{n:012d}"
        table.submit_transaction(
            [
                ("upsert", {"PartitionKey": guid, "RowKey": STATE_ROW, "Deleted": False, "LastModified": ""}),
                ("upsert", {"PartitionKey": guid, "RowKey": "mailbox-00", "EventId": f"AAMk-{n}", "Generation": 0}),
            ]
        )


def tombstones(services: Services) -> int:
    rows = services.store.table(SYNCSTATE_TABLE).query_entities(
        "RowKey ge 'tomb-' and RowKey lt 'tomb.'", select=["RowKey"]
    )
    return sum(1 for _ in rows)


def main() -> None:
    counter = StorageCounter.install()
    azurite = start_azurite()
    try:
        base = make_services(settings_env(azurite, "http://127.0.0.1:9", "http://127.0.0.1:9"))
        clean_storage(base)
        seed(base, "old", OLD_PER_MAILBOX)
        time.sleep(1.5)
        moment = datetime.now(UTC)
        time.sleep(1.5)
        seed(base, "young", YOUNG_PER_MAILBOX)
        days = base.settings.tombstone_retention_days
        clocked = Services(base.settings, clock=lambda: moment + timedelta(days=days), store=base.store)
        print(f"{MAILBOXES * OLD_PER_MAILBOX:,} expired and {MAILBOXES * YOUNG_PER_MAILBOX:,} young tombstones "
              f"over {MAILBOXES} mailboxes; {MAX_ROWS_PER_RUN:,} rows per run at most")  # fmt: skip
        print("run | purged | table requests (wire) | seconds")
        total_requests, total_seconds, run = 0, 0.0, 0
        while True:
            run += 1
            counter.reset()
            started = time.perf_counter()
            report = purge_expired(clocked)
            seconds = time.perf_counter() - started
            requests = counter.by_service().get("table", 0)
            total_requests += requests
            total_seconds += seconds
            print(f"{run:>3} | {report['tombstones']:>6,} | {requests:>21,} | {seconds:7.2f}")
            if not report["tombstones"]:
                break
        left = tombstones(base)
        print(f"total: {total_requests:,} table requests, {total_seconds:.2f} s; "
              f"{left:,} tombstones left (the young ones: {MAILBOXES * YOUNG_PER_MAILBOX:,})")  # fmt: skip
        if left != MAILBOXES * YOUNG_PER_MAILBOX:
            raise SystemExit("the purge left the wrong rows")
        seed_appointments(base, LIVE_APPOINTMENTS)
        counter.reset()
        started = time.perf_counter()
        report = purge_expired(clocked)
        seconds = time.perf_counter() - started
        print(f"idle run (nothing expired) beside {LIVE_APPOINTMENTS:,} live appointments ({2 * LIVE_APPOINTMENTS:,} "
              f"eventlinks rows) and the young tombstones: {counter.by_service().get('table', 0)} table requests, "
              f"{seconds:.2f} s, purged {report['tombstones']}/{report['dimeTombstoneRows']}")  # fmt: skip
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
