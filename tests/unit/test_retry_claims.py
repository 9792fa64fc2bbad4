"""Claims on failed transactions (`shared.core.retry_claims`): who may run a row again, now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.retry_claims import CLAIM_SECONDS, claim_until, is_held

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def test_a_claim_holds_until_it_lapses():
    until = claim_until(NOW)
    assert is_held(until, NOW) and is_held(until, NOW + timedelta(seconds=CLAIM_SECONDS - 1))
    assert not is_held(until, NOW + timedelta(seconds=CLAIM_SECONDS))


def test_no_claim_or_a_released_one_holds_nothing():
    assert not is_held(None, NOW) and not is_held("", NOW)


def test_a_claim_that_cannot_be_read_holds():
    """A value we cannot read never lets a second worker import the row (the row stays a visible
    failure, and any save drops the claim)."""
    assert is_held("soon", NOW)
    assert is_held("2026-12-06T14:00:00", NOW)  # no zone: not comparable with now
    assert not is_held("2026-12-06T14:00:00+00:00", NOW)
