"""Which calendarView listings prove many events at once (pure).

The proof that an event is in the primary calendar is that a calendarView over its own range (its
times, a day either side: `usecases/calendar_proof.proof_range`) lists it. A listing over a wider
range proves the same: an event overlapping its own range overlaps any range containing it, and a
calendarView lists every event of the primary calendar overlapping its range
(https://learn.microsoft.com/graph/api/user-list-calendarview). So the ranges of one mailbox's
events that overlap are listed once, as their union: a burst of changes on the same days (a
planner's week, a bulk retry) costs one listing instead of one per event. The union is capped in
length (MAX_SPAN), so that one listing stays a page or two of ids on a busy calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MAX_SPAN = timedelta(days=7)  # a merged listing covers at most a week (a page or two of ids)

Range = tuple[str, str]  # ISO start, end (UTC, "…Z")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def merged_windows(ranges: list[Range], max_span: timedelta = MAX_SPAN) -> dict[Range, Range]:
    """Each range → the listing that proves it: overlapping ranges (sorted by start) share their
    union while it spans at most `max_span`; a range longer than that on its own is its own."""
    out: dict[Range, Range] = {}
    group: list[Range] = []
    start = end = datetime.min.replace(tzinfo=UTC)

    def close() -> None:
        if group:  # sorted by start: the first starts earliest
            out.update(dict.fromkeys(group, (group[0][0], max((r[1] for r in group), key=_at))))

    for where in sorted(set(ranges), key=lambda r: (_at(r[0]), _at(r[1]))):
        low, high = _at(where[0]), _at(where[1])
        if group and low <= end and max(end, high) - start <= max_span:
            group.append(where)
            end = max(end, high)
            continue
        close()
        group, start, end = [where], low, high
    close()
    return out
