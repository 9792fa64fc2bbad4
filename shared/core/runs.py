"""What one run did: the figures of the status view.

Outlook → Dime.Scheduler: a delta or reconcile run of one mailbox (its record under the mailbox).
Dime.Scheduler → Outlook: the reconcile of every eligible resource at once (one record under
`DIME_SCHEDULER_SCOPE`), the same shape so the status view and the console read both alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
