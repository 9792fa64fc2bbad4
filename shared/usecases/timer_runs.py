"""The last run of the timers that cover every mailbox at once (retry, renewal, and what the delta
and reconcile timers handed out: usecases/fanout.py): one run record each, beside the
Dime.Scheduler reconcile's, so the Overview can say when they last ran and how."""

from __future__ import annotations

import logging
from datetime import datetime

from shared.core.runs import DELTA, DIME_SCHEDULER_SCOPE, RECONCILE, RENEWAL, RETRY, RunStats
from shared.services import Services

log = logging.getLogger(__name__)

TIMER_KINDS = (RETRY, RENEWAL, DELTA, RECONCILE)


async def save_timer_run(
    services: Services,
    kind: str,
    started_at: datetime,
    *,
    changes: int = 0,
    writes: int = 0,
    deletes: int = 0,
    skipped: int = 0,
    errors: list[str] | None = None,
    round: str = "",
) -> None:
    """Save what one timer run did; a record that cannot be written is logged, never raised (the
    run's own work is done by then)."""
    run = RunStats(kind, DIME_SCHEDULER_SCOPE, started_at, reason="timer", changes=changes, writes=writes)
    run.deletes, run.skipped, run.round = deletes, skipped, round
    for message in errors or []:
        run.error(message)
    run.finish("completed" if not run.errors else "completed-with-errors", services.clock())
    try:
        await services.astore.syncstate.save_run(run)
    except Exception as error:
        log.warning("%s timer: run record not saved: %s", kind, str(error)[:300])
