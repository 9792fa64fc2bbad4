"""The management API's shared shapes: unknown parameters, times, pages, camelCase."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.core.api_format import camel, iso_utc, page, unknown_names, unknown_params_reason


def test_a_typo_in_a_query_parameter_is_named_and_code_is_always_allowed() -> None:
    assert unknown_names({"stauts": "failed", "code": "k"}, {"status", "mailbox"}) == ["stauts"]
    reason = unknown_params_reason({"stauts": "failed"}, {"status", "mailbox"})
    assert reason is not None and "stauts" in reason and "status" in reason
    assert unknown_params_reason({"status": "failed", "code": "k"}, {"status"}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24T09:00:00+00:00", "2026-11-24T09:00:00Z"),
        ("2026-11-24T09:00:00.1234567Z", "2026-11-24T09:00:00Z"),
        ("2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00Z"),
        ("2026-11-24T09:00:00", "2026-11-24T09:00:00Z"),
        (datetime(2026, 11, 24, 9, 0, 0, 500000, tzinfo=UTC), "2026-11-24T09:00:00Z"),
        (datetime(2026, 11, 24, 11, 0, tzinfo=timezone(timedelta(hours=2))), "2026-11-24T09:00:00Z"),
        ("", None),
        (None, None),
        ("not a time", None),
    ],
)
def test_every_time_comes_out_in_one_iso_8601_utc_format(value, expected) -> None:
    assert iso_utc(value) == expected


def test_the_last_page_has_no_continuation_token() -> None:
    assert page([1], None) == {"items": [1]}
    assert page([], "abc") == {"items": [], "continuationToken": "abc"}


def test_table_columns_become_camel_case() -> None:
    assert [camel(n) for n in ("RowKey", "LastRunAt", "Result", "deltaLink")] == [
        "rowKey",
        "lastRunAt",
        "result",
        "deltaLink",
    ]


def test_a_bulk_message_carries_every_filter_field_back() -> None:
    """The bulk queue re-reads the filter of each page: no field of TransactionFilter may be lost."""
    import dataclasses

    from shared.core.transaction_query import TransactionFilter, parse_filter
    from shared.usecases.admin.bulk_transactions import bulk_message

    raw = {
        "status": "failed",
        "mailbox": "m1",
        "since": "2026-11-01",
        "until": "2026-11-03",
        "direction": "outlook-to-dime",
        "errorCode": "DIME_REJECTED",
    }
    query = parse_filter(raw)
    assert all(getattr(query, f.name) is not None for f in dataclasses.fields(TransactionFilter))
    assert parse_filter(bulk_message("retry", query)["filter"]) == query
