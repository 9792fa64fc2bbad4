"""Graph subscriptions, without I/O: what to ask for, which ones are due, and how fast to go.

Every enabled mailbox has exactly one subscription on `/users/{object-id}/events`; the table is
the only place we look for our own subscriptions (listing them is limited to 25 per 20 s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.core.resources import Resource

CHANGE_TYPE = "created,updated,deleted"
MAX_LIFETIME_MINUTES = 10000  # Graph allows 10,080 on paper, but has answered "only 10070"
MIN_LIFETIME_MINUTES = 45

# Graph's subscription API, per app per tenant: 500 writes per 20 seconds.
WRITES_PER_WINDOW = 500
WINDOW_SECONDS = 20.0


def subscription_resource(object_id: str) -> str:
    return f"/users/{object_id.lower()}/events"


def expiry_after(now: datetime, lifetime_minutes: int) -> datetime:
    """The expirationDateTime to ask for, clamped to what Graph accepts for Outlook events."""
    minutes = max(MIN_LIFETIME_MINUTES, min(MAX_LIFETIME_MINUTES, lifetime_minutes))
    return (now + timedelta(minutes=minutes)).replace(microsecond=0)


def format_expiry(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiry(value: str | None) -> datetime | None:
    """An ISO 8601 UTC time as Graph or our table writes it; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # Graph sends up to 7 fractional digits; fromisoformat wants at most 6
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = head + "." + digits[:6].ljust(6, "0") + rest[len(digits) :]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed


_CAP = re.compile(r"can only be (\d+) minutes", re.IGNORECASE)
CAP_MARGIN_MINUTES = 10  # below the named cap: our clock and Graph's may differ a little


def allowed_lifetime(graph_message: str) -> int | None:
    """The lifetime to ask for after a 400 that names Graph's cap ("Subscription expiration can
    only be 10070 minutes in the future"), a little under it; None when the 400 is about something
    else (then it is an error to show, not a reason to retry)."""
    match = _CAP.search(graph_message or "")
    if match is None:
        return None
    minutes = int(match.group(1)) - CAP_MARGIN_MINUTES
    return minutes if minutes >= MIN_LIFETIME_MINUTES else None


class Step(StrEnum):
    RENEW = "renew"  # PATCH a new expiry (404/400 -> create anew)
    CREATE = "create"  # enabled, but no subscription
    DELETE = "delete"  # disabled, but still subscribed
    NONE = "none"


def renewal_step(resource: Resource, now: datetime, within: timedelta) -> Step:
    """What the renewal timer does for one mailbox."""
    if not resource.consent.enabled:
        return Step.DELETE if resource.subscription_id else Step.NONE
    if not resource.subscription_id:
        return Step.CREATE
    expiry = parse_expiry(resource.subscription_expiry)
    if expiry is None:
        return Step.RENEW  # known id, unknown expiry (a row from an older version): PATCH tells
    if expiry <= now:
        return Step.CREATE  # expired: Graph has deleted it already
    if expiry - now <= within:
        return Step.RENEW
    return Step.NONE


def renewal_plan(resources: Iterable[Resource], now: datetime, within: timedelta) -> list[tuple[Step, Resource]]:
    """The mailboxes that need a subscription write, soonest expiry first."""
    plan = [(step, r) for r in resources if (step := renewal_step(r, now, within)) is not Step.NONE]
    plan.sort(key=lambda item: (parse_expiry(item[1].subscription_expiry) or now, item[1].object_id))
    return plan


@dataclass
class TokenBucket:
    """A pacer: `take` returns how long to wait before the next write.

    Pure: the caller passes the time and sleeps for the returned delay, so it is tested without
    clocks. A bucket holding `burst` tokens refilled at `rate` per second lets at most
    burst + rate * window writes into any window of `window` seconds; `for_limit` splits a limit
    evenly between the two, so no window ever exceeds it (a full bucket refilled at limit/window
    would allow twice the limit).
    """

    burst: float
    rate: float  # tokens per second
    tokens: float | None = None
    updated: float | None = None

    @classmethod
    def for_limit(cls, limit: int = WRITES_PER_WINDOW, window: float = WINDOW_SECONDS) -> TokenBucket:
        return cls(burst=limit / 2, rate=limit / 2 / window)

    def take(self, now: float) -> float:
        """Take one token at time `now` (seconds); the delay before the write may happen."""
        if self.tokens is None or self.updated is None:
            self.tokens, self.updated = self.burst, now
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate  # the deficit refills in this many seconds


class LifecycleVerdict(StrEnum):
    """What a lifecycle notification leads to once Graph's own answer about the subscription is read."""

    RECREATE = "recreate"  # confirmed gone: 404, or its expiry has passed
    RENEW = "renew"  # it exists, on this mailbox's events: PATCH a new expiry
    ALIVE = "alive"  # a removal Graph does not confirm: it exists and has not expired
    FOREIGN = "foreign"  # Graph holds it on another resource than this mailbox's events: never act
    UNREADABLE = "unreadable"  # no readable resource or expiry: read again, never guess


def lifecycle_verdict(event: str, answer: dict | None, mailbox_id: str, now: datetime) -> LifecycleVerdict:
    """Confirm a `subscriptionRemoved` or `reauthorizationRequired` with GET /subscriptions/{id}
    (`answer`, None for 404) before anything is recreated or renewed: anyone holding the function
    key and one clientState can post either, and a forged removal must not make us create a
    subscription, nor a forged reauthorization renew one Graph does not hold for that mailbox."""
    if answer is None:
        return LifecycleVerdict.RECREATE
    resource, expiration = answer.get("resource"), answer.get("expirationDateTime")
    expiry = parse_expiry(expiration) if isinstance(expiration, str) else None
    if not isinstance(resource, str) or expiry is None:
        return LifecycleVerdict.UNREADABLE
    if resource.strip().strip("/").lower() != subscription_resource(mailbox_id).strip("/"):
        return LifecycleVerdict.FOREIGN
    if expiry <= now:
        return LifecycleVerdict.RECREATE
    return LifecycleVerdict.RENEW if event == "reauthorizationRequired" else LifecycleVerdict.ALIVE


def renewed_recently(renewed_at: str | None, now: datetime, within: timedelta) -> bool:
    """Whether a subscription was renewed (or created) less than `within` ago: a second
    reauthorizationRequired then costs no PATCH. An unreadable time is not recent."""
    when = parse_expiry(renewed_at)
    return when is not None and timedelta(0) <= now - when < within
