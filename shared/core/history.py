"""History in pictures: outcomes counted per hour and per day, without I/O.

What is counted: each time a transaction is *written* as succeeded or failed (added, or saved after a
status change), at the time the row carries (`updated_at`, else `created_at`), in UTC. A failure that a
retry later resolves therefore counts once as failed (in its hour) and once as succeeded (in the hour of
the retry): the chart shows outcomes recorded, not the current state of each transaction. Pending,
skipped and archived writes are not counted (they cost nothing extra to write).

Storage shape (see shared/adapters/storage/history_store.py): one row per (UTC day, writer shard) with
one column per (direction, status, hour), e.g. `OutlookSucceeded07`. Every writer (a thread of one
process) owns its rows, so it writes absolute values with a blind merge: no read, no etag, no retry,
and no increment is lost to another writer. Drawing 14 days is one range query over
`days × shards` small rows, summed here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.transactions import Status, Transaction

HOURS_SHOWN = 24
DAYS_SHOWN = 14
DAY_FORMAT = "%Y%m%d"

# Direction → column prefix, and the API's key for it.
DIRECTIONS = {"outlook-to-dime": ("Outlook", "outlookToDime"), "dime-to-outlook": ("Dime", "dimeToOutlook")}
OUTCOMES = {Status.SUCCEEDED: "Succeeded", Status.FAILED: "Failed"}


def column(direction: str, status: Status, hour: int) -> str | None:
    """The counter column of one outcome, or None when it is not counted."""
    if direction not in DIRECTIONS or status not in OUTCOMES or not 0 <= hour <= 23:
        return None
    return f"{DIRECTIONS[direction][0]}{OUTCOMES[status]}{hour:02d}"


def outcome_time(transaction: Transaction, fallback: datetime) -> datetime:
    """When the outcome was written: the row's own time (the use case's clock), UTC."""
    for value in (transaction.updated_at, transaction.created_at):
        if not value:
            continue
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            continue
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return fallback


def tally(transactions: Iterable[Transaction], fallback: datetime) -> dict[str, Counter[str]]:
    """The counts a batch adds, by UTC day ("YYYYMMDD") and column; uncounted outcomes left out."""
    bumps: dict[str, Counter[str]] = {}
    for transaction in transactions:
        moment = outcome_time(transaction, fallback)
        name = column(transaction.direction, transaction.status, moment.hour)
        if name is not None:
            bumps.setdefault(moment.strftime(DAY_FORMAT), Counter())[name] += 1
    return bumps


def day_range(now: datetime) -> tuple[str, str]:
    """The RowKey range [low, high) holding the last DAYS_SHOWN days (today included)."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=DAYS_SHOWN - 1)
    return first.strftime(DAY_FORMAT), (today + timedelta(days=1)).strftime(DAY_FORMAT)


def _empty() -> dict[str, dict[str, int]]:
    return {key: {"succeeded": 0, "failed": 0} for _, key in DIRECTIONS.values()}


def summarize(rows: Iterable[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """Sum every shard's row into the last HOURS_SHOWN hours and DAYS_SHOWN days (oldest first).

    Each row carries `Day` ("YYYYMMDD") and counter columns; a column with a value that is not a
    non-negative integer is unreadable, and is reported rather than guessed (`unreadable`)."""
    now = now.astimezone(UTC)
    hour_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS_SHOWN - 1)
    hours = [hour_start + timedelta(hours=i) for i in range(HOURS_SHOWN)]
    first_day = now.date() - timedelta(days=DAYS_SHOWN - 1)
    days = [first_day + timedelta(days=i) for i in range(DAYS_SHOWN)]
    by_hour = {moment: _empty() for moment in hours}
    by_day = {day: _empty() for day in days}
    unreadable = 0
    names = {
        f"{prefix}{label}": (key, label.lower()) for prefix, key in DIRECTIONS.values() for label in OUTCOMES.values()
    }
    for row in rows:
        try:
            day = datetime.strptime(str(row.get("Day", "")), DAY_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            unreadable += 1
            continue
        for name, value in row.items():
            head, digits = name[:-2], name[-2:]
            if head not in names or not digits.isdigit() or int(digits) > 23:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                unreadable += 1
                continue
            direction, outcome = names[head]
            moment = day + timedelta(hours=int(digits))
            if moment in by_hour:
                by_hour[moment][direction][outcome] += value
            if day.date() in by_day:
                by_day[day.date()][direction][outcome] += value
    return {
        "hours": [{"start": _iso(moment), **by_hour[moment]} for moment in hours],
        "days": [{"day": day.isoformat(), **by_day[day]} for day in days],
        "unreadable": unreadable,
    }


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
