"""How long tombstones and last-error notes must live (shared/core/retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.backoff import MAX_DELAY
from shared.core.retention import (
    GRAPH_REDELIVERY,
    QUEUE_MESSAGE_TTL,
    automatic_retry_span,
    minimum_retention_days,
    retention_cutoff,
)


@pytest.mark.parametrize(
    ("attempts", "span"),
    [
        (1, timedelta()),  # the first attempt is the only one
        (2, timedelta(minutes=1)),
        (8, timedelta(minutes=1 + 2 + 4 + 8 + 16 + 32 + 64)),  # the default: 2 h 7 min
        (10, timedelta(minutes=511)),  # 1 … 256
        (11, timedelta(minutes=511) + MAX_DELAY),  # 512 minutes would exceed the 6 h cap
    ],
)
def test_the_automatic_retry_span_is_the_sum_of_the_backoff_delays(attempts, span):
    assert automatic_retry_span(attempts) == span


def test_the_minimum_covers_graph_redelivery_a_queued_week_and_the_retries():
    for attempts in range(1, 101):
        days = minimum_retention_days(attempts)
        needed = GRAPH_REDELIVERY + QUEUE_MESSAGE_TTL + automatic_retry_span(attempts)
        assert timedelta(days=days) >= max(needed, 2 * QUEUE_MESSAGE_TTL)
        assert timedelta(days=days - 1) < max(needed, 2 * QUEUE_MESSAGE_TTL)  # and not a day more
    assert minimum_retention_days(8) == 14 and minimum_retention_days(100) == 31


def test_the_cutoff_is_the_retention_before_now():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert retention_cutoff(now, 30) == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
