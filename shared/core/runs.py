"""What one run did: the figures of the status view.

Outlook → Dime.Scheduler: a delta or reconcile run of one mailbox (its record under the mailbox).
Dime.Scheduler → Outlook: the reconcile of every eligible resource (one record under
`DIME_SCHEDULER_SCOPE`, which its chunks add up: `opened_run`, `with_chunk`), the same shape so
the status view and the console read both alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DELTA = "delta"
RECONCILE = "reconcile"
DIME_RECONCILE = "dime-reconcile"
RETRY = "retry"  # the retry timer's run (under DIME_SCHEDULER_SCOPE: it covers every mailbox)
RENEWAL = "renewal"  # the subscription renewal timer's run (likewise)
DIME_SCHEDULER_SCOPE = "~dime-scheduler"  # the "mailbox" of a run that covers every mailbox ("~": after every id)
NOTIFICATIONS = "notifications"  # a packed message's share of one mailbox: its figures are logged, never saved


@dataclass
class RunStats:
    kind: str  # DELTA, RECONCILE or DIME_RECONCILE
    mailbox_id: str
    started_at: datetime
    reason: str = ""  # timer, resync reason ("missed", "admin", ...), or "continue"
    outcome: str = "running"  # completed, paused, breaker-tripped, failed, skipped
    round: str = ""  # delta: "incremental" or a fresh round's reason
    changes: int = 0  # delta: items reported; reconcile: links checked; dime-reconcile: appointments listed
    writes: int = 0  # upserts (and relinks) that changed state
    deletes: int = 0
    healed: int = 0  # of the deletes: copies nothing pointed at any more (orphans a reconcile removed)
    skipped: int = 0
    errors: int = 0
    graph_requests: int = 0
    dime_requests: int | None = None  # None: the run does not count them (not "none were sent")
    duration_ms: int = 0
    last_error: str = ""
    breaker: str = ""  # the breaker's message when it tripped
    error_messages: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message[:1000]
        if len(self.error_messages) < 20:
            self.error_messages.append(message[:300])

    def finish(self, outcome: str, finished_at: datetime) -> RunStats:
        self.outcome = outcome
        self.duration_ms = int((finished_at - self.started_at).total_seconds() * 1000)
        return self


# A run handed out in chunks (the Dime.Scheduler reconcile's fan-out): one record for the whole run,
# which its timer opens and each chunk adds its figures to. -----------------------------------------

_CHUNKED_ROUND = re.compile(
    r"^(?P<run>\S+): (?P<done>\d+) of (?P<total>\d+) chunks done \((?P<mailboxes>\d+) mailboxes\)$"
)
_WORSE = ("completed", "breaker-tripped", "failed")  # a run's outcome is its worst chunk's


def chunked_round(run: str, done: int, total: int, mailboxes: int) -> str:
    """The record's `round`: which run, how many of its chunks are done (the record is complete when
    every chunk has added to it; a chunk that never ran leaves it visibly incomplete)."""
    return f"{run}: {done} of {total} chunks done ({mailboxes} mailboxes)"


def opened_run(kind: str, scope: str, started_at: datetime, run: str, chunks: int, mailboxes: int) -> RunStats:
    """What the timer saves when it hands out a run: no figures yet, every chunk to come."""
    outcome = "completed" if chunks == 0 else "running"
    return RunStats(
        kind, scope, started_at, reason="timer", outcome=outcome, round=chunked_round(run, 0, chunks, mailboxes)
    )


def with_chunk(row: dict[str, Any] | None, part: RunStats, run: str, finished_at: datetime) -> RunStats | None:
    """The run's record with one more chunk's figures added; None when the record is not this run's
    (a later run opened its own: a late chunk's figures then belong to no record, and are logged)."""
    parsed = _CHUNKED_ROUND.match(str((row or {}).get("Round", "")))
    if row is None or parsed is None or parsed["run"] != run:
        return None
    total = RunStats(
        part.kind, part.mailbox_id, datetime.fromisoformat(str(row["StartedAt"])), reason=str(row.get("Reason", ""))
    )
    for name, column in _SUMS:
        setattr(total, name, int(row.get(column) or 0) + getattr(part, name))
    total.dime_requests = int(row.get("DimeRequests") or 0) + (part.dime_requests or 0)
    total.last_error = part.last_error or str(row.get("LastError") or "")
    total.breaker = "; ".join(b for b in (str(row.get("Breaker") or ""), part.breaker) if b)[:4000]
    earlier = [m for m in str(row.get("ErrorMessages") or "").split("\n") if m]
    total.error_messages = (earlier + part.error_messages)[:20]
    # A failed chunk is not done: the host delivers it again, and that delivery adds its own figures.
    done, chunks = int(parsed["done"]) + (part.outcome != "failed"), int(parsed["total"])
    total.round = chunked_round(run, done, chunks, int(parsed["mailboxes"]))
    worst = max((str(row.get("Outcome")), part.outcome), key=lambda o: _WORSE.index(o) if o in _WORSE else -1)
    outcome = worst if worst in _WORSE else "completed"
    return total.finish(outcome if done >= chunks or outcome != "completed" else "running", finished_at)


_SUMS = (
    ("changes", "Changes"),
    ("writes", "Writes"),
    ("deletes", "Deletes"),
    ("healed", "Healed"),
    ("skipped", "Skipped"),
    ("errors", "Errors"),
    ("graph_requests", "GraphRequests"),
)
