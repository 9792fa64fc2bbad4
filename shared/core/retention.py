"""How long the rows kept for late deliveries must live: tombstones and last-error notes.

A tombstone (an Outlook event we deleted; a Dime.Scheduler appointment deleted by the planner) is
there to refuse a late or replayed change of what is gone. It must therefore outlive every way an
old change can still arrive automatically:

* Graph retries a notification it could not deliver for up to 4 hours (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks);
* a queued message lives up to the queue's default time-to-live of 7 days (the app sets none when
  it sends; Azure Storage queues, "Put Message": messagettl defaults to seven days), so a backlog
  can hand us a week-old change;
* a message that failed every delivery becomes a failed transaction that the retry timer runs again
  with backoff (1, 2, 4 … minutes, capped at 6 h) until RETRY_MAX_ATTEMPTS attempts.

A last-error note (the code of a queue message's last transient failure) is read when the message
poisons, at the latest when the retry timer drains `<queue>-poison-poison`: a message can wait 7
days in its queue and 7 more in the poison queue's, so 14 days cover it.

Manual retries (`POST …/transactions/retry`) have no time limit, so no retention covers them; a
replay after the tombstone is gone still has to prove the event is in the primary calendar (an
event new to us from a notification), and a planner appointment brought back by an old replay is
deleted again by the next Dime.Scheduler reconcile (it is no longer listed).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from shared.core.backoff import backoff_delay

GRAPH_REDELIVERY = timedelta(hours=4)
QUEUE_MESSAGE_TTL = timedelta(days=7)
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650


def automatic_retry_span(max_attempts: int) -> timedelta:
    """From the first failed attempt to the last automatic retry: the sum of the backoff delays
    between attempts 1 … max_attempts."""
    return sum((backoff_delay(attempts) for attempts in range(1, max_attempts)), timedelta())


def minimum_retention_days(max_attempts: int) -> int:
    """Whole days a tombstone (and a last-error note) must be kept with that many automatic retries."""
    tombstone = GRAPH_REDELIVERY + QUEUE_MESSAGE_TTL + automatic_retry_span(max_attempts)
    note = 2 * QUEUE_MESSAGE_TTL
    return math.ceil(max(tombstone, note) / timedelta(days=1))


def retention_cutoff(now: datetime, days: int) -> datetime:
    """Rows last written before this moment may go."""
    return now - timedelta(days=days)
