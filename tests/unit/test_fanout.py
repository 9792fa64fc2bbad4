"""The pure part of the timers' fan-out (shared/core/fanout.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.consent import Consent
from shared.core.fanout import (
    CHUNK_SIZE,
    MAX_CHUNK_IDS,
    Chunk,
    Claim,
    ClaimRow,
    Rejected,
    chunk_delays,
    chunk_messages,
    claim_verdict,
    parse_chunk,
    renewal_targets,
    run_id,
)
from shared.core.resources import Resource

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RUN = run_id("delta", NOW, "salt")


def test_a_run_id_is_one_a_chunk_accepts():
    assert RUN.startswith("delta-20261206t120000z-") and run_id("delta", NOW, "other salt") != RUN
    assert parse_chunk({"kind": "delta", "run": RUN, "mailboxIds": ["a"]}) == Chunk("delta", RUN, ("a",))


def test_chunks_hold_25_mailboxes_each_and_name_every_one_once():
    ids = [f"m{i}" for i in range(2 * CHUNK_SIZE + 1)] + ["m0"]
    messages = chunk_messages("reconcile", RUN, ids)
    assert [len(m["mailboxIds"]) for m in messages] == [CHUNK_SIZE, CHUNK_SIZE, 1]
    assert [i for m in messages for i in m["mailboxIds"]] == ids[:-1]
    assert chunk_messages("delta", RUN, []) == []


def test_a_chunk_is_read_lowercase_and_without_repeats():
    chunk = parse_chunk({"kind": "renewal", "run": RUN, "mailboxIds": ["A-1", "a-1", "b"]})
    assert chunk == Chunk("renewal", RUN, ("a-1", "b"))


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([], "not a JSON object"),
        ({"kind": "sync", "run": RUN, "mailboxIds": ["a"]}, "unknown kind"),
        ({"kind": "delta", "mailboxIds": ["a"]}, "no valid run id"),
        ({"kind": "delta", "run": RUN}, "no mailboxIds"),
        ({"kind": "delta", "run": RUN, "mailboxIds": []}, "no mailboxIds"),
        ({"kind": "delta", "run": RUN, "mailboxIds": ["a"] * (MAX_CHUNK_IDS + 1)}, f"more than {MAX_CHUNK_IDS}"),
        ({"kind": "delta", "run": RUN, "mailboxIds": [7]}, "not a table key"),
        ({"kind": "delta", "run": RUN, "mailboxIds": ["~dime-scheduler"]}, "not a table key"),
        ({"kind": "delta", "run": RUN, "mailboxIds": ["a#b"]}, "not a table key"),
    ],
)
def test_a_message_we_did_not_send_is_rejected_with_its_reason(message, reason):
    rejected = parse_chunk(message)
    assert isinstance(rejected, Rejected) and reason in rejected.reason


def test_renewal_chunks_become_visible_a_window_apart():
    assert chunk_delays(7, 3, 20.0) == [0, 0, 0, 20, 20, 20, 40]
    assert chunk_delays(2, 0, 20.0) == [0, 20]  # never zero per window


@pytest.mark.parametrize(
    ("row", "verdict"),
    [
        (None, Claim.TAKE),
        (ClaimRow(RUN, "", None), Claim.DONE),
        (ClaimRow("delta-20261206t115500z-00000000", "", None), Claim.TAKE),  # an earlier run finished
        (ClaimRow(RUN, "other", NOW + timedelta(seconds=1)), Claim.HELD),
        (ClaimRow("delta-20261206t115500z-00000000", "other", NOW + timedelta(minutes=5)), Claim.HELD),
        (ClaimRow(RUN, "other", NOW), Claim.TAKE),  # expired: its worker crashed
        (ClaimRow(RUN, "other", None), Claim.TAKE),  # unreadable expiry: no hold to rely on
    ],
)
def test_the_claim_verdict(row, verdict):
    assert claim_verdict(row, RUN, NOW) is verdict


def mailbox(object_id: str, *, enabled: bool = True, sub: str | None = "s", expires: timedelta | None = None):
    expiry = (NOW + expires).isoformat() if expires is not None else None
    return Resource(
        object_id=object_id,
        upn=f"{object_id}@contoso.com",
        email=f"{object_id}@contoso.com",
        consent=Consent(enabled, frozenset({"busy"}), frozenset({"normal"})),
        subscription_id=sub and f"{sub}-{object_id}",
        subscription_expiry=expiry,
    )


def test_renewal_hands_out_what_is_due_and_what_another_key_made():
    within = timedelta(hours=24)
    resources = [
        mailbox("fresh", expires=timedelta(days=3)),
        mailbox("due", expires=timedelta(hours=2)),
        mailbox("missing", sub=None),
        mailbox("rotated", expires=timedelta(days=3)),
        mailbox("disabled", enabled=False, expires=timedelta(days=3)),
        mailbox("disabled-rotated", enabled=False, sub=None),
    ]
    made_with = {"s-fresh": "now", "s-due": "now", "s-rotated": "before", "s-disabled": "now"}
    assert renewal_targets(resources, made_with, "now", NOW, within) == ["due", "missing", "rotated", "disabled"]
