"""Timers that grow with the tenant (pure: no I/O): which mailboxes a timer run hands out, in which
messages, and what a worker makes of a message and of a mailbox's claim row.

A timer (delta, reconcile, renewal) lists the directory once and sends one message per CHUNK_SIZE
mailboxes to the chunk queue, so the platform's scale-out runs them and the timer returns in
seconds. A message names its timer's kind, the run (one id per timer invocation) and mailbox ids;
it chooses nothing else: the worker reads each mailbox again from the directory, and works only on
those onboarded (and, for delta, enabled).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from shared.core.outlook_to_dime.subscriptions import Step, renewal_step
from shared.core.resources import Resource
from shared.core.runs import DELTA, RECONCILE, RENEWAL
from shared.core.transaction_query import is_key_safe

KINDS = (DELTA, RECONCILE, RENEWAL)
CHUNK_SIZE = 25  # mailboxes per message: ~one round trip to send, a few seconds of a worker's time when idle
# A message may name at most this many (room for a CHUNK_SIZE changed between two deployments);
# more is not a message we sent.
MAX_CHUNK_IDS = 4 * CHUNK_SIZE
MAX_ID_CHARS = 256  # a table key (is_key_safe); an object id is 36
_RUN_ID = re.compile(r"^[a-z-]{1,20}-[0-9]{8}t[0-9]{6}z-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Chunk:
    """A validated message: its timer's kind, the run it belongs to, and the mailboxes (lowercase,
    distinct, in the message's order)."""

    kind: str
    run: str
    mailbox_ids: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    """A message that is not one we send: why, in a few words (logged once, nothing is touched)."""

    reason: str


def run_id(kind: str, started: datetime, salt: str) -> str:
    """One id per timer invocation: kind, start time (UTC, to the second), 8 hex digits of salt."""
    digest = hashlib.sha256(salt.encode("utf-8")).hexdigest()[:8]
    return f"{kind}-{started.strftime('%Y%m%dT%H%M%SZ').lower()}-{digest}"


def chunk_messages(kind: str, run: str, mailbox_ids: Iterable[str], size: int = CHUNK_SIZE) -> list[dict[str, Any]]:
    """The messages of one timer run: `size` mailboxes each (the last one fewer), none empty."""
    ids = list(dict.fromkeys(mailbox_ids))
    return [{"kind": kind, "run": run, "mailboxIds": ids[start : start + size]} for start in range(0, len(ids), size)]


def parse_chunk(message: Any) -> Chunk | Rejected:
    """A chunk message, checked field by field: a bad one is Rejected (no field gets a default)."""
    if not isinstance(message, dict):
        return Rejected("not a JSON object")
    kind, run, ids = message.get("kind"), message.get("run"), message.get("mailboxIds")
    if kind not in KINDS:
        return Rejected("unknown kind")
    if not isinstance(run, str) or not _RUN_ID.match(run):
        return Rejected("no valid run id")
    if not isinstance(ids, list) or not ids:
        return Rejected("no mailboxIds")
    if len(ids) > MAX_CHUNK_IDS:
        return Rejected(f"more than {MAX_CHUNK_IDS} mailboxIds")
    if not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS and is_key_safe(i) for i in ids):
        return Rejected("a mailbox id that is not a table key")
    return Chunk(kind, run, tuple(dict.fromkeys(i.strip().lower() for i in ids)))


def chunk_delays(chunks: int, per_window: int, window_seconds: float) -> list[int]:
    """Seconds each message stays invisible, so that at most `per_window` messages become visible
    per window (the renewal's pacing across instances: each worker paces only its own process)."""
    per_window = max(1, per_window)
    return [int((index // per_window) * window_seconds) for index in range(chunks)]


class Claim(Enum):
    """What a worker may do with a mailbox of a run, given the mailbox's claim row."""

    TAKE = "take"  # nobody works on it: take it (etag-conditional)
    DONE = "done"  # this run already did it (a message delivered twice)
    HELD = "held"  # another worker holds it, not expired (this run's duplicate, or a slow earlier run)


@dataclass(frozen=True)
class ClaimRow:
    run: str
    owner: str  # "" once finished
    expires_at: datetime | None  # None: unreadable, so not a hold anyone can rely on


def claim_verdict(row: ClaimRow | None, run: str, now: datetime) -> Claim:
    """Decide from the row as read; the write that takes it is conditional on that read."""
    if row is None:
        return Claim.TAKE
    if row.run == run and not row.owner:
        return Claim.DONE
    if row.owner and row.expires_at is not None and row.expires_at > now:
        return Claim.HELD
    return Claim.TAKE


@dataclass(frozen=True)
class Claims:
    """A chunk's claims as taken: those it works on (with the etag finishing needs), those this run
    already did, those another worker holds."""

    taken: dict[str, str | None]
    done: list[str]
    held: list[str]


def split_claims(claims: dict[str, tuple[Claim, str | None]]) -> Claims:
    """`take_claims`' answer (per mailbox: verdict, etag), sorted by what the worker does with each."""
    out = Claims({}, [], [])
    for mailbox_id, (verdict, etag) in claims.items():
        if verdict is Claim.DONE:
            out.done.append(mailbox_id)
        elif verdict is Claim.HELD:
            out.held.append(mailbox_id)
        else:
            out.taken[mailbox_id] = etag
    return out


def claim_expiry(now: datetime, budget_seconds: float, margin_seconds: float) -> datetime:
    """A claim outlives its worker's budget by a margin; a crashed worker's claim then expires."""
    return now + timedelta(seconds=max(budget_seconds, 0) + margin_seconds)


def renewal_targets(
    resources: Iterable[Resource], made_with: dict[str, str], current: str, now: datetime, within: timedelta
) -> list[str]:
    """The mailboxes the renewal timer hands out: those whose subscription needs a write now
    (`renewal_step`), and those whose subscription was made under another clientState key or URL
    (a rotation; `made_with` maps each recorded subscription id to its fingerprint)."""
    out = []
    for resource in resources:
        row = made_with.get(resource.subscription_id) if resource.subscription_id else None
        rotated = resource.consent.enabled and row is not None and row != current
        if rotated or renewal_step(resource, now, within) is not Step.NONE:
            out.append(resource.object_id)
    return out
