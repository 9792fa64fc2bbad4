"""Which calendarView listings prove many events at once (core/proof_windows.py)."""

from __future__ import annotations

from datetime import datetime

from shared.core.proof_windows import MAX_SPAN, merged_windows


def day(d: int, hour: int = 8) -> str:
    return f"2026-11-{d:02d}T{hour:02d}:00:00Z"


def test_overlapping_ranges_share_their_union_and_a_gap_starts_another_listing() -> None:
    a, b, c = (day(9), day(11, 9)), (day(10), day(12, 9)), (day(20), day(22, 9))
    windows = merged_windows([a, b, c, a])
    assert windows == {a: (day(9), day(12, 9)), b: (day(9), day(12, 9)), c: c}


def test_a_union_never_spans_more_than_the_cap() -> None:
    ranges = [(day(d), day(d + 2, 9)) for d in range(1, 20)]  # each overlaps the next
    windows = merged_windows(ranges)
    spans = set(windows.values())
    assert len(spans) > 1
    for start, end in spans:
        assert datetime.fromisoformat(end) - datetime.fromisoformat(start) <= MAX_SPAN
    for where, window in windows.items():  # each range lies inside the listing that proves it
        assert window[0] <= where[0] and where[1] <= window[1]


def test_a_range_longer_than_the_cap_is_listed_on_its_own() -> None:
    long = (day(1), day(15))
    short = (day(2), day(3))
    assert merged_windows([long, short]) == {long: long, short: short}
