"""Claims on failed transactions a bulk retry is working on: who may run a row again, now.

Why: a page of a bulk retry can be run by two workers at once (a duplicate bulk message, a
message redelivered while its first delivery still runs, two processes). Without a claim both
run the page's notifications through the pipeline: two `/import`s of every appointment, two
attempts counted per row. A worker therefore marks the failure-index rows it takes
(`CLAIM_FIELD` = until when, ISO UTC), each write conditional on the etag its page read returned:
of two workers that read the same rows, one claim succeeds and the other finds the row changed
and leaves it. A claim lapses after CLAIM_SECONDS, so a worker that died mid-page holds nothing
once its message is redelivered (the host makes it visible again after the queue's visibility
lease, 10 minutes); a worker that fails with an exception releases its claims before the host
redelivers the message at once. Every save of the row (the retry's outcome) replaces the whole
entity and so drops the claim.

Pure: the stores write the field, the bulk use case decides with these functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

CLAIM_FIELD = "RetryClaimedUntil"
# Longer than a page takes even when Graph throttles (the pipeline's $batch budget is 120 s), shorter
# than the queue's visibility lease after a crash (10 minutes), so a redelivery finds it lapsed.
CLAIM_SECONDS = 300


def claim_until(now: datetime) -> str:
    return (now + timedelta(seconds=CLAIM_SECONDS)).isoformat()


def is_held(value: object, now: datetime) -> bool:
    """Whether a row's claim (the field's value, None or "" when unclaimed) still holds at `now`.
    A value that is not a time with a zone holds: a field we cannot read never lets a second
    worker import the same row (the row stays failed and visible; any save drops the claim)."""
    if value is None or value == "":
        return False
    try:
        until = datetime.fromisoformat(str(value))
    except ValueError:
        return True
    if until.tzinfo is None:
        return True
    return until > now
