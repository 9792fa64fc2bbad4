"""When a failed transaction is tried again: a deterministic exponential backoff.

No jitter: the retry timer runs on a schedule (every few minutes), which already spreads the
load, and a deterministic schedule is what an administrator (and a test) can predict.
"""

from __future__ import annotations

from datetime import datetime, timedelta

BASE_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(hours=6)


def backoff_delay(attempts: int, retry_after_seconds: float | None = None) -> timedelta:
    """The wait after `attempts` failed attempts: 1, 2, 4, 8 ... minutes, capped at 6 hours.

    A Retry-After the service sent is honoured when it is longer (still capped).
    """
    exponent = max(attempts, 1) - 1
    delay = MAX_DELAY if exponent >= 20 else min(BASE_DELAY * (2**exponent), MAX_DELAY)
    if retry_after_seconds is not None and retry_after_seconds > 0:
        delay = max(delay, min(timedelta(seconds=retry_after_seconds), MAX_DELAY))
    return delay


def next_attempt_at(now: datetime, attempts: int, retry_after_seconds: float | None = None) -> datetime:
    return now + backoff_delay(attempts, retry_after_seconds)


def is_due(next_attempt: datetime | None, now: datetime) -> bool:
    """A failure without a next-attempt time (recorded before backoff existed) is due at once."""
    return next_attempt is None or next_attempt <= now
