"""Housekeeping: rows kept only for late deliveries go once no late delivery can come.

Tombstones (Outlook events we deleted, `syncstate` rows `tomb-…`; Dime.Scheduler appointments the
planner deleted, their `eventlinks` partition) and last-error notes (`transactions` partition
`~lasterror`) only grow otherwise. Each is purged TOMBSTONE_RETENTION_DAYS after it was last
written (the table's own Timestamp, so rows written before this existed are covered too); the
setting's minimum follows from how late a delivery can arrive (shared/core/retention.py).

The retry timer calls this after its retries: one bounded batch per kind and run (the rest waits
for the next run, every 10 minutes by default), deletes as table transactions per partition, each
row deleted only as read (etag), so a tombstone written again or an appointment revived
meanwhile stays. A failure here is logged and never fails the retries.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.core.retention import retention_cutoff
from shared.services import Services

log = logging.getLogger(__name__)

MAX_ROWS_PER_RUN = 2_000  # per kind: a run stays short; a backlog drains over a few runs


def purge_expired(services: Services, limit: int = MAX_ROWS_PER_RUN) -> dict[str, Any]:
    """Delete what has outlived TOMBSTONE_RETENTION_DAYS; the counts (and table requests) of this run."""
    from shared.adapters.storage.event_links_store import EventLinkStore
    from shared.adapters.storage.syncstate_store import SyncStateStore
    from shared.adapters.storage.transactions_store import transaction_store

    started = time.monotonic()
    before = retention_cutoff(services.clock(), services.settings.tombstone_retention_days)
    syncstate = SyncStateStore(services.store)
    transactions = transaction_store(services)
    appointments = EventLinkStore(services.store)
    kinds = {
        "tombstones": (syncstate.expired_tombstones, syncstate.delete_rows),
        "lastErrors": (transactions.expired_last_errors, transactions.delete_rows),
        "dimeTombstoneRows": (appointments.expired_tombstones, appointments.delete_rows),
    }
    report: dict[str, Any] = {"before": before.isoformat(), "tableRequests": 0}
    for name, (expired, delete) in kinds.items():
        try:
            rows = expired(before, limit)
            report["tableRequests"] += 1  # the query (the service may page it: a few more)
            deleted, requests = delete(rows) if rows else (0, 0)
            report[name] = deleted
            report["tableRequests"] += requests
        except Exception:
            log.exception("housekeeping: purging %s failed; the next run tries again", name)
            report[name] = None  # unknown, not zero
    report["ms"] = int((time.monotonic() - started) * 1000)
    return report
