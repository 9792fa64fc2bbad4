"""What one delta or reconcile run did for one mailbox: the figures of the status view."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

DELTA = "delta"
RECONCILE = "reconcile"
NOTIFICATIONS = "notifications"  # a packed message's share of one mailbox: its figures are logged, never saved


@dataclass
class RunStats:
    kind: str  # DELTA or RECONCILE
    mailbox_id: str
    started_at: datetime
    reason: str = ""  # timer, resync reason ("missed", "admin", ...), or "continue"
    outcome: str = "running"  # completed, paused, breaker-tripped, failed, skipped
    round: str = ""  # delta: "incremental" or a fresh round's reason
    changes: int = 0  # delta: items reported; reconcile: links checked
    writes: int = 0  # upserts (and relinks) that changed state
    deletes: int = 0
    skipped: int = 0
    errors: int = 0
    graph_requests: int = 0
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
