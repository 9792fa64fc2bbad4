"""The pure subscription rules: expiry, due-for-renewal selection, adoption matching, pacing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.consent import Consent
from shared.core.outlook_to_dime.subscriptions import (
    LifecycleVerdict,
    Step,
    TokenBucket,
    allowed_lifetime,
    expiry_after,
    format_expiry,
    lifecycle_verdict,
    parse_expiry,
    renewal_plan,
    renewal_step,
    renewed_recently,
)
from shared.core.resources import Resource

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(minutes=1440)
ON = Consent.parse(True, "busy", "normal")
OFF = replace(ON, enabled=False)
OID = "4b3f6a1e-0000-4000-8000-000000000001"


def resource(consent=ON, sub: str | None = "s1", expiry: datetime | str | None = NOW + 3 * DAY) -> Resource:
    stamp = format_expiry(expiry) if isinstance(expiry, datetime) else expiry
    return Resource(OID, "a@b.c", "a@b.c", consent, subscription_id=sub, subscription_expiry=stamp)


@pytest.mark.parametrize(
    ("res", "step"),
    [
        (resource(expiry=NOW + 3 * DAY), Step.NONE),
        (resource(expiry=NOW + DAY + timedelta(seconds=1)), Step.NONE),
        (resource(expiry=NOW + DAY), Step.RENEW),  # exactly at the threshold
        (resource(expiry=NOW + timedelta(minutes=1)), Step.RENEW),
        (resource(expiry=NOW), Step.CREATE),  # expired: Graph deleted it
        (resource(expiry=NOW - DAY), Step.CREATE),
        (resource(expiry=None), Step.RENEW),  # id known, expiry unknown: PATCH tells
        (resource(expiry="garbage"), Step.RENEW),
        (resource(sub=None, expiry=None), Step.CREATE),
        (resource(consent=OFF), Step.DELETE),
        (resource(consent=OFF, sub=None, expiry=None), Step.NONE),
    ],
)
def test_renewal_step(res, step):
    assert renewal_step(res, NOW, DAY) is step


def test_renewal_plan_selects_only_what_needs_a_write_soonest_first():
    resources = [
        replace(resource(expiry=NOW + timedelta(hours=h)), object_id=f"m{h:03d}") for h in (100, 5, 30, 20, 23, 25)
    ]
    plan = renewal_plan(resources, NOW, DAY)
    assert [(s, r.object_id) for s, r in plan] == [(Step.RENEW, "m005"), (Step.RENEW, "m020"), (Step.RENEW, "m023")]


def test_expiry_is_clamped_to_what_graph_accepts():
    assert expiry_after(NOW, 10000) == NOW + timedelta(minutes=10000)
    assert expiry_after(NOW, 20000) == NOW + timedelta(minutes=10000)
    assert expiry_after(NOW, 5) == NOW + timedelta(minutes=45)


def test_parse_expiry_reads_graph_and_table_formats():
    assert parse_expiry("2026-03-01T12:00:00Z") == NOW
    assert parse_expiry("2026-03-01T12:00:00.1234567Z") == NOW + timedelta(microseconds=123456)
    assert parse_expiry("2026-03-01T13:00:00+01:00") == NOW
    assert parse_expiry("2026-03-01T12:00:00") == NOW
    assert parse_expiry(None) is None and parse_expiry("") is None and parse_expiry("soon") is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Subscription expiration can only be 10070 minutes in the future.", 10060),
        ("subscription expiration can only be 4230 minutes in the future", 4220),
        ("Subscription expiration can only be in the future.", None),
        ("Resource not found.", None),
        ("Subscription expiration can only be 50 minutes in the future.", None),  # below the minimum
        ("", None),
    ],
)
def test_a_400_naming_the_expiry_cap_gives_the_lifetime_to_retry_with(message, expected):
    assert allowed_lifetime(message) == expected


def run(bucket: TokenBucket, writes: int) -> list[float]:
    """Simulate a loop that takes a token, sleeps the delay, then writes; the write times."""
    clock, times = 0.0, []
    for _ in range(writes):
        clock += bucket.take(clock)
        times.append(clock)
    return times


def max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_token_bucket_never_exceeds_500_writes_in_any_20_seconds():
    times = run(TokenBucket.for_limit(500, 20.0), 2000)
    assert max_in_window(times, 20.0) <= 500
    assert times[249] == 0.0  # a burst of half the limit goes at once
    assert times[-1] == pytest.approx((2000 - 250) / 12.5)  # then 12.5 per second


def test_a_naive_full_bucket_would_exceed_the_limit():
    """Why for_limit halves the burst: a full 500 bucket refilled at 25/s lets ~1000 through."""
    assert max_in_window(run(TokenBucket(burst=500, rate=25.0), 2000), 20.0) > 500


def test_token_bucket_refills_while_idle_but_not_above_the_burst():
    bucket = TokenBucket.for_limit(10, 20.0)  # burst 5, 0.25 per second
    assert [bucket.take(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(0.0) == pytest.approx(4.0)
    assert bucket.take(1000.0) == 0.0  # long idle: full again, and no more than the burst
    assert [bucket.take(1000.0) for _ in range(4)] == [0.0] * 4
    assert bucket.take(1000.0) == pytest.approx(4.0)


# --- lifecycle notifications are confirmed by Graph's GET /subscriptions/{id} -------------------


def graph_answer(resource: object = f"/users/{OID}/events", expiry: object = "2026-03-04T12:00:00.0000000Z") -> dict:
    return {"id": "s1", "resource": resource, "expirationDateTime": expiry, "changeType": "created,updated,deleted"}


@pytest.mark.parametrize(
    ("event", "answer", "verdict"),
    [
        ("subscriptionRemoved", None, LifecycleVerdict.RECREATE),  # 404: removal confirmed
        ("reauthorizationRequired", None, LifecycleVerdict.RECREATE),  # gone: nothing to renew
        ("subscriptionRemoved", graph_answer(), LifecycleVerdict.ALIVE),  # forged: it is there
        ("reauthorizationRequired", graph_answer(), LifecycleVerdict.RENEW),
        ("subscriptionRemoved", graph_answer(expiry="2026-03-01T11:59:00Z"), LifecycleVerdict.RECREATE),
        ("reauthorizationRequired", graph_answer(resource=f"Users/{OID.upper()}/Events"), LifecycleVerdict.RENEW),
        ("reauthorizationRequired", graph_answer(resource="/users/someone-else/events"), LifecycleVerdict.FOREIGN),
        ("subscriptionRemoved", graph_answer(resource=f"/users/{OID}/messages"), LifecycleVerdict.FOREIGN),
        ("reauthorizationRequired", graph_answer(resource=None), LifecycleVerdict.UNREADABLE),
        ("subscriptionRemoved", graph_answer(expiry="soon"), LifecycleVerdict.UNREADABLE),
        ("subscriptionRemoved", graph_answer(expiry=None), LifecycleVerdict.UNREADABLE),  # never "alive" by default
    ],
)
def test_lifecycle_verdict_from_graphs_own_answer(event: str, answer: dict | None, verdict: LifecycleVerdict) -> None:
    assert lifecycle_verdict(event, answer, OID, NOW) is verdict


@pytest.mark.parametrize(
    ("renewed_at", "recent"),
    [
        ((NOW - timedelta(minutes=9)).isoformat(), True),
        ((NOW - timedelta(minutes=10)).isoformat(), False),
        ("", False),  # an older row: unknown is not recent
        ("not a time", False),
        ((NOW + timedelta(hours=2)).isoformat(), False),  # a time in the future is not trusted
    ],
)
def test_renewals_are_debounced_by_the_rows_renewed_at(renewed_at: str, recent: bool) -> None:
    assert renewed_recently(renewed_at, NOW, timedelta(minutes=10)) is recent
