"""Delta rounds as pure values: the stored state, when to start afresh, and reading a page.

A *round* starts with a full listing of the window (a fresh round) and then continues with the
deltaLink Graph hands back, reporting only what changed. The window is fixed by the first call,
so a new round starts whenever the window moves: at the first run of each UTC day (the window is
whole days, a little wider than the decision's, so it always covers it) and when the SYNC_DAYS_*
settings change.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

ROUND_MAX_AGE = timedelta(days=1)


class DeltaExpired(Exception):
    """Graph no longer knows the token (410 Gone, syncStateNotFound, resyncRequired)."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def around(cls, now: datetime, days_back: int, days_forward: int) -> Window:
        """Whole UTC days, so two runs on the same day ask for the same window."""
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(midnight - timedelta(days=days_back), midnight + timedelta(days=days_forward + 1))

    def iso(self) -> tuple[str, str]:
        return (format_graph_time(self.start), format_graph_time(self.end))


def format_graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class DeltaState:
    """Where a mailbox's delta stands (the syncstate row "delta")."""

    delta_link: str | None = None  # where the next round continues (a finished round)
    next_link: str | None = None  # where the current, unfinished round continues
    round_started_at: datetime | None = None
    window: Window | None = None
    fresh: bool = False  # the unfinished round (next_link) is a full listing

    def fresh_round_due(self, now: datetime, window: Window) -> str | None:
        """Why the next run must start a full listing, or None to continue."""
        if self.next_link:
            return None  # finish what was started, even if it is a full listing
        if not self.delta_link or self.round_started_at is None or self.window is None:
            return "first-round"
        if self.window != window:
            return "window-moved"  # a new UTC day (or new SYNC_DAYS_* settings): roll forward
        if now - self.round_started_at >= ROUND_MAX_AGE:
            return "round-too-old"
        return None

    def start_fresh(self, now: datetime, window: Window) -> DeltaState:
        return DeltaState(delta_link=None, next_link=None, round_started_at=now, window=window, fresh=True)

    def paused_at(self, next_link: str) -> DeltaState:
        return replace(self, next_link=next_link)

    def finished(self, delta_link: str) -> DeltaState:
        return replace(self, delta_link=delta_link, next_link=None, fresh=False)


def lease_free(holder: str, expires_at: datetime | None, owner: str, now: datetime) -> bool:
    """Whether `owner` may take a mailbox's delta lease whose row names `holder` until `expires_at`:
    nobody holds it (released: ""), we do, or the holder's time is up (a crashed run's lease
    expires). The write that takes it is conditional on the row as read."""
    return holder in (owner, "") or expires_at is None or expires_at <= now


@dataclass(frozen=True)
class DeltaPage:
    events: list[dict[str, Any]]  # current state of changed events (last one wins per id)
    removed: list[str]  # ids reported @removed (deleted, or changed outside the window)
    next_link: str | None
    delta_link: str | None


def read_page(document: dict[str, Any]) -> DeltaPage:
    """Split one delta page into events and removals, de-duplicated by id (the last wins)."""
    latest: dict[str, dict[str, Any] | None] = {}
    for item in document.get("value") or []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        latest.pop(item["id"], None)  # keep the order of the last occurrence
        latest[item["id"]] = None if "@removed" in item else item
    return DeltaPage(
        events=[item for item in latest.values() if item is not None],
        removed=[event_id for event_id, item in latest.items() if item is None],
        next_link=document.get("@odata.nextLink") or None,
        delta_link=document.get("@odata.deltaLink") or None,
    )


def digest(event_id: str) -> str:
    """A short, stable fingerprint of an event id, to remember what a paused full listing saw."""
    return hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).hexdigest()


_ETAG = re.compile(r'^(?:W/)?"(.*)"$')


def change_key_of(item: dict[str, Any]) -> str | None:
    """The changeKey a delta item announces: its ``changeKey``, else its ``@odata.etag``
    (``W/"<changeKey>"``), the only version stamp partial items carry."""
    key = item.get("changeKey")
    if isinstance(key, str) and key:
        return key
    etag = item.get("@odata.etag")
    match = _ETAG.match(etag) if isinstance(etag, str) else None
    return match.group(1) if match and match.group(1) else None
