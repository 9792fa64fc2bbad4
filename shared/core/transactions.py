"""Transactions: one row per attempted write, so an administrator can see and retry everything."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The partition of transactions about a Dime.Scheduler appointment rather than one mailbox (a rejected
# publication, a publication that failed before reaching a calendar).
DIME_PARTITION = "dime-scheduler"


class Status(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    ARCHIVED = "archived"


class ErrorCode(StrEnum):
    """Stable codes (documented in the README); `transient` ones are retried automatically."""

    GRAPH_THROTTLED = "GRAPH_THROTTLED"
    GRAPH_UNAVAILABLE = "GRAPH_UNAVAILABLE"
    GRAPH_FORBIDDEN = "GRAPH_FORBIDDEN"
    GRAPH_NOT_FOUND = "GRAPH_NOT_FOUND"
    GRAPH_REJECTED = "GRAPH_REJECTED"
    EVENT_UNREADABLE = "EVENT_UNREADABLE"
    DIME_UNAVAILABLE = "DIME_UNAVAILABLE"
    DIME_THROTTLED = "DIME_THROTTLED"
    DIME_AUTH_FAILED = "DIME_AUTH_FAILED"
    DIME_REJECTED = "DIME_REJECTED"
    DIME_RESOURCE_UNKNOWN = "DIME_RESOURCE_UNKNOWN"
    # A message that failed every delivery with no classified cause (one that poisoned after transient
    # failures keeps the last one's code; its message says "poisoned: ...").
    POISON_MESSAGE = "POISON_MESSAGE"
    CIRCUIT_BREAKER_TRIPPED = "CIRCUIT_BREAKER_TRIPPED"
    # The event's link kept changing under our writes (other instances working on it): retried.
    LINK_CONTESTED = "LINK_CONTESTED"
    PUBLICATION_MALFORMED = "PUBLICATION_MALFORMED"
    PUBLICATION_INVALID = "PUBLICATION_INVALID"
    RULES_UNREADABLE = "RULES_UNREADABLE"  # the stored rule set cannot be read: fix it, then retry
    # A resource list (Assignments/Resources) with an item no known shape reads: nothing applied or deleted.
    PUBLICATION_UNREADABLE_RESOURCES = "PUBLICATION_UNREADABLE_RESOURCES"
    # A publication without AppointmentGuid whose Id GET /appointment/{id} could not resolve.
    PUBLICATION_UNRESOLVED = "PUBLICATION_UNRESOLVED"

    @property
    def transient(self) -> bool:
        return self in _TRANSIENT


_TRANSIENT = {
    ErrorCode.GRAPH_THROTTLED,
    ErrorCode.GRAPH_UNAVAILABLE,
    ErrorCode.DIME_UNAVAILABLE,
    ErrorCode.DIME_THROTTLED,
    ErrorCode.POISON_MESSAGE,
    ErrorCode.LINK_CONTESTED,
}


class SyncError(Exception):
    """A failure with a stable code; `retry_after` (seconds) when the service said so."""

    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after


def new_transaction_id(now: datetime) -> str:
    """Time-ordered, so a mailbox's rows in a date range are one key-range query."""
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:12]}"


@dataclass
class Transaction:
    mailbox_id: str
    direction: str  # "outlook-to-dime" or "dime-to-outlook"
    operation: str  # "upsert", "delete", ...
    status: Status
    created_at: str
    event_id: str | None = None
    appointment_guid: str | None = None
    reason: str | None = None
    error_code: str | None = None
    message: str | None = None
    attempts: int = 1  # every try, a poisoned message's queue deliveries included
    redeliveries: int = 0  # of those, the queue's deliveries after a message's first (see scheduled_attempts)
    payload: dict[str, Any] = field(default_factory=dict)  # what a retry needs (the queue message)
    id: str = ""
    updated_at: str | None = None
    next_attempt_at: str | None = None
    # What the console shows without a Graph or Dime.Scheduler call (issue 19), written with the row:
    # the subject as the board (or the calendar) shows it, never a masked private event's real one;
    # its start (ISO 8601 UTC); the person's display name and UPN. None on rows written before.
    subject: str | None = None
    start: str | None = None
    person: str | None = None
    upn: str | None = None

    @property
    def scheduled_attempts(self) -> int:
        """The attempts the retry schedule counts (backoff, RETRY_MAX_ATTEMPTS): a poisoned
        message's deliveries, seconds apart, count as one, so its first retry waits a minute and
        neither a redelivery storm nor duplicates of one message use up the automatic retries."""
        return max(self.attempts - self.redeliveries, 1)
