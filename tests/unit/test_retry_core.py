"""Pure parts of failures and retries: backoff, public ids, filters, tokens, poisoned messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.backoff import backoff_delay, is_due, next_attempt_at
from shared.core.poison import describe_poison
from shared.core.transaction_query import (
    QueryError,
    decode_token,
    encode_token,
    parse_filter,
    parse_page_size,
    parse_public_id,
    public_id,
    row_key_bound,
)
from shared.core.transactions import ErrorCode, Status, Transaction, new_transaction_id
from shared.usecases.retry import due_for_retry

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("attempts", "minutes"), [(1, 1), (2, 2), (3, 4), (4, 8), (9, 256), (10, 360), (99, 360)])
def test_backoff_doubles_from_one_minute_and_caps_at_six_hours(attempts, minutes):
    assert backoff_delay(attempts) == timedelta(minutes=minutes)


def test_backoff_honours_a_longer_retry_after_but_stays_capped():
    assert backoff_delay(1, retry_after_seconds=300) == timedelta(minutes=5)
    assert backoff_delay(3, retry_after_seconds=10) == timedelta(minutes=4)
    assert backoff_delay(1, retry_after_seconds=10**9) == timedelta(hours=6)
    assert next_attempt_at(NOW, 2) == NOW + timedelta(minutes=2)
    assert is_due(None, NOW) and is_due(NOW, NOW) and not is_due(NOW + timedelta(seconds=1), NOW)


def test_public_id_round_trips_and_is_url_safe():
    row_key = new_transaction_id(NOW)
    for mailbox in ("0f1e2d3c-0000-4000-8000-000000000001", "unknown", "a@b.c"):
        value = public_id(mailbox, row_key)
        assert parse_public_id(value) == (mailbox, row_key)
        assert all(c.isalnum() or c in "-_.TZ" for c in value)


@pytest.mark.parametrize(
    "value", ["", "x", "x.y", "20261122T120000000000Z-abc.", "20261122T120000000000Z-abc.***", "."]
)
def test_malformed_public_ids_are_unknown(value):
    assert parse_public_id(value) is None


def test_row_keys_compare_like_the_times_they_were_made():
    assert new_transaction_id(NOW) < new_transaction_id(NOW + timedelta(microseconds=1))
    assert row_key_bound(NOW) <= new_transaction_id(NOW) < row_key_bound(NOW + timedelta(microseconds=1))


def test_filter_parsing():
    parsed = parse_filter({"status": "FAILED", "mailbox": " ABC ", "since": "2026-11-01", "until": "2026-11-02T10:00"})
    assert parsed.status is Status.FAILED and parsed.mailbox == "abc"
    assert parsed.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert parsed.until == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert parse_filter({}, default_status=Status.FAILED).status is Status.FAILED
    assert parse_filter({}).status is None


@pytest.mark.parametrize(
    "values",
    [
        {"status": "done"},
        {"since": "tomorrow"},
        {"since": "2026-11-02", "until": "2026-11-01"},
        {"mailbox": "~failed"},
        {"mailbox": "a#b"},
        {"other": "x"},
        {"status": 3},
    ],
)
def test_bad_filters_say_why(values):
    with pytest.raises(QueryError):
        parse_filter(values)


def test_page_size_and_tokens():
    assert parse_page_size(None) == 100 and parse_page_size("1000") == 1000
    for bad in ("0", "1001", "x"):
        with pytest.raises(QueryError):
            parse_page_size(bad)
    token = {"PartitionKey": "p", "RowKey": None}
    assert decode_token(encode_token(token)) == token
    assert encode_token(None) is None and decode_token(None) is None
    for bad in ("%%%", "bnVsbA", "WzFd"):  # garbage, null, [1]
        with pytest.raises(QueryError):
            decode_token(bad)


def test_poisoned_notification_is_described_with_its_mailbox_and_event():
    message = {"mailboxId": "ABC-1", "eventId": "e1", "changeType": "deleted"}
    poisoned = describe_poison("graph-notifications", json.dumps(message).encode())
    assert (poisoned.mailbox_id, poisoned.event_id, poisoned.operation) == ("abc-1", "e1", "delete")
    assert poisoned.payload == {"queue": "graph-notifications", "message": message}
    assert poisoned.readable


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"{" * 5000])
def test_any_poisoned_body_is_kept_with_mailbox_unknown(body):
    poisoned = describe_poison("dime-publications", body)
    assert poisoned.mailbox_id == "unknown"
    assert poisoned.direction == "dime-to-outlook"
    assert poisoned.payload["queue"] == "dime-publications"
    assert poisoned.payload["raw"] == body.decode("utf-8", errors="replace")  # kept as it came, readable or not
    assert not poisoned.readable


def test_unsafe_mailbox_ids_become_unknown_and_fingerprints_are_stable():
    body = json.dumps({"mailboxId": "a/b"}).encode()
    assert describe_poison("graph-lifecycle", body).mailbox_id == "unknown"
    assert describe_poison("graph-lifecycle", body).fingerprint == describe_poison("graph-lifecycle", body).fingerprint
    assert describe_poison("graph-lifecycle", body).fingerprint != describe_poison("mailbox-resync", body).fingerprint


def _failed(code: ErrorCode, attempts: int = 1, next_at: datetime | None = NOW) -> Transaction:
    return Transaction(
        mailbox_id="m",
        direction="outlook-to-dime",
        operation="upsert",
        status=Status.FAILED,
        created_at=NOW.isoformat(),
        error_code=code.value,
        attempts=attempts,
        next_attempt_at=next_at.isoformat() if next_at else None,
        payload={"queue": "graph-notifications", "message": {}},
    )


def test_only_due_transient_failures_under_the_limit_are_retried_automatically():
    assert due_for_retry(_failed(ErrorCode.DIME_UNAVAILABLE), NOW, 8)
    assert due_for_retry(_failed(ErrorCode.POISON_MESSAGE, next_at=None), NOW, 8)
    assert not due_for_retry(_failed(ErrorCode.DIME_REJECTED), NOW, 8)
    assert not due_for_retry(_failed(ErrorCode.DIME_UNAVAILABLE, attempts=8), NOW, 8)
    assert not due_for_retry(_failed(ErrorCode.DIME_UNAVAILABLE, next_at=NOW + timedelta(seconds=1)), NOW, 8)
    no_payload = _failed(ErrorCode.DIME_UNAVAILABLE)
    no_payload.payload = {}
    assert not due_for_retry(no_payload, NOW, 8)


def test_a_poisoned_message_s_deliveries_count_once_for_the_retry_limit():
    """attempts tells every try; the schedule counts a poisoned message's 5 deliveries as one."""
    poisoned = _failed(ErrorCode.DIME_UNAVAILABLE, attempts=11)
    poisoned.redeliveries = 4  # 5 deliveries, then 6 retries: 7 scheduled attempts
    assert poisoned.scheduled_attempts == 7 and due_for_retry(poisoned, NOW, 8)
    poisoned.attempts = 12
    assert poisoned.scheduled_attempts == 8 and not due_for_retry(poisoned, NOW, 8)
    assert _failed(ErrorCode.DIME_UNAVAILABLE, attempts=3).scheduled_attempts == 3  # no redeliveries: as before
