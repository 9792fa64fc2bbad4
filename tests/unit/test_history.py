"""The history counters' pure part: which outcome lands in which column, and summing shards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.history import DAYS_SHOWN, HOURS_SHOWN, column, day_range, summarize, tally
from shared.core.transactions import Status, Transaction

NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def tx(status: Status, when: datetime, direction: str = "outlook-to-dime", updated: datetime | None = None):
    return Transaction(
        mailbox_id="m",
        direction=direction,
        operation="upsert",
        status=status,
        created_at=when.isoformat(),
        updated_at=updated.isoformat() if updated else None,
    )


@pytest.mark.parametrize(
    ("direction", "status", "hour", "expected"),
    [
        ("outlook-to-dime", Status.SUCCEEDED, 7, "OutlookSucceeded07"),
        ("dime-to-outlook", Status.FAILED, 23, "DimeFailed23"),
        ("outlook-to-dime", Status.SKIPPED, 7, None),  # only outcomes are counted
        ("outlook-to-dime", Status.PENDING, 7, None),
        ("outlook-to-dime", Status.ARCHIVED, 7, None),
        ("sideways", Status.FAILED, 7, None),
        ("outlook-to-dime", Status.FAILED, 24, None),
    ],
)
def test_column_names_one_counter_per_direction_status_and_hour(direction, status, hour, expected):
    assert column(direction, status, hour) == expected


def test_tally_buckets_by_the_rows_own_utc_time_and_prefers_the_status_change_time():
    late_evening = datetime(2026, 12, 5, 23, 59, tzinfo=UTC)
    bumps = tally(
        [
            tx(Status.SUCCEEDED, NOW),
            tx(Status.SUCCEEDED, NOW + timedelta(minutes=5)),
            tx(Status.FAILED, NOW, "dime-to-outlook"),
            tx(Status.SKIPPED, NOW),
            # a failure resolved by a retry an hour later counts in the retry's hour
            tx(Status.SUCCEEDED, late_evening, updated=NOW + timedelta(hours=1)),
        ],
        fallback=NOW,
    )
    assert bumps["20261206"]["OutlookSucceeded09"] == 2
    assert bumps["20261206"]["DimeFailed09"] == 1
    assert bumps["20261206"]["OutlookSucceeded10"] == 1
    assert list(bumps) == ["20261206"] and sum(bumps["20261206"].values()) == 4
    # an offset time is converted: 01:00+02:00 is 23:00 UTC the day before
    offset = tally([tx(Status.FAILED, datetime.fromisoformat("2026-12-06T01:00:00+02:00"))], fallback=NOW)
    assert offset == {"20261205": {"OutlookFailed23": 1}}


def test_tally_falls_back_to_the_write_time_when_the_row_has_none():
    row = tx(Status.FAILED, NOW)
    row.created_at = "not a time"
    assert tally([row], fallback=NOW) == {"20261206": {"OutlookFailed09": 1}}


def test_day_range_covers_the_last_fourteen_days_today_included():
    assert day_range(NOW) == ("20261123", "20261207")
    assert day_range(NOW)[1] > "20261206-abc" and day_range(NOW)[0] <= "20261123-abc"


def test_summarize_sums_every_shard_into_hours_and_days():
    rows = [
        {"Day": "20261206", "OutlookSucceeded09": 3, "DimeFailed08": 1},
        {"Day": "20261206", "OutlookSucceeded09": 4, "OutlookFailed00": 2},  # another writer, same hour
        {"Day": "20261205", "OutlookSucceeded09": 5, "OutlookSucceeded10": 6},  # 09:00 is 24 h ago: out
        {"Day": "20261123", "DimeSucceeded12": 7},  # the first day shown
        {"Day": "20261206", "OutlookSucceeded09": "many", "Note": "x"},  # unreadable value, unknown column
    ]
    summary = summarize(rows, NOW)
    assert len(summary["hours"]) == HOURS_SHOWN and len(summary["days"]) == DAYS_SHOWN
    assert summary["hours"][0]["start"] == "2026-12-05T10:00:00Z"
    assert summary["hours"][-1] == {
        "start": "2026-12-06T09:00:00Z",
        "outlookToDime": {"succeeded": 7, "failed": 0},
        "dimeToOutlook": {"succeeded": 0, "failed": 0},
    }
    assert summary["hours"][0]["outlookToDime"]["succeeded"] == 6
    assert summary["hours"][-2]["dimeToOutlook"]["failed"] == 1
    assert summary["days"][-1] == {
        "day": "2026-12-06",
        "outlookToDime": {"succeeded": 7, "failed": 2},
        "dimeToOutlook": {"succeeded": 0, "failed": 1},
    }
    assert summary["days"][-2]["outlookToDime"]["succeeded"] == 11
    assert summary["days"][0] == {
        "day": "2026-11-23",
        "outlookToDime": {"succeeded": 0, "failed": 0},
        "dimeToOutlook": {"succeeded": 7, "failed": 0},
    }
    assert summary["unreadable"] == 1


def test_summarize_of_nothing_is_every_bucket_at_zero():
    summary = summarize([], NOW)
    assert all(h["outlookToDime"] == {"succeeded": 0, "failed": 0} for h in summary["hours"])
    assert [d["day"] for d in summary["days"]][-1] == "2026-12-06" and summary["unreadable"] == 0
