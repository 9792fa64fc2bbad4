"""A poisoned queue message, described for a failed transaction (pure: no I/O).

Whatever the message is (valid JSON or not, ours or not), it becomes a description with a mailbox
("unknown" when none can be read), the original text, and a fingerprint: the same message
poisoning again (after a retry re-queued it) reopens the same transaction instead of adding one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shared.core.transaction_query import is_key_safe
from shared.core.transactions import DIME_PARTITION
from shared.names import LIFECYCLE_QUEUE, MAILBOX_CHUNKS_QUEUE, NOTIFICATIONS_QUEUE, PUBLICATIONS_QUEUE, RESYNC_QUEUE

UNKNOWN_MAILBOX = "unknown"
OUTLOOK_TO_DIME = "outlook-to-dime"
DIME_TO_OUTLOOK = "dime-to-outlook"

_OPERATIONS = {
    NOTIFICATIONS_QUEUE: "notification",
    LIFECYCLE_QUEUE: "lifecycle",
    RESYNC_QUEUE: "resync",
    PUBLICATIONS_QUEUE: "publication",
}


@dataclass(frozen=True)
class PoisonedMessage:
    queue: str
    mailbox_id: str
    direction: str
    operation: str
    event_id: str | None
    appointment_guid: str | None
    payload: dict[str, Any]  # {"queue": ..., "message": <JSON>} or {"queue": ..., "raw": <text>}
    fingerprint: str
    readable: bool


def fingerprint_of(queue: str, body: bytes) -> str:
    """The same on every delivery of one message and in its poison queue (the body moves unchanged)."""
    return hashlib.sha256(queue.encode("utf-8") + b"\n" + body).hexdigest()


def describe_poison(queue: str, body: bytes) -> PoisonedMessage:
    fingerprint = fingerprint_of(queue, body)
    text = body.decode("utf-8", errors="replace")
    try:
        message: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        message = None
    direction = DIME_TO_OUTLOOK if queue == PUBLICATIONS_QUEUE else OUTLOOK_TO_DIME
    operation = _OPERATIONS.get(queue, "message")
    if not isinstance(message, dict):
        payload: dict[str, Any] = {"queue": queue, "raw": text}
        return PoisonedMessage(queue, UNKNOWN_MAILBOX, direction, operation, None, None, payload, fingerprint, False)
    mailbox = _text(message, "mailboxId")
    mailbox = mailbox.lower() if mailbox and is_key_safe(mailbox) else UNKNOWN_MAILBOX
    guid = _text(message, "appointmentGuid")
    if queue == NOTIFICATIONS_QUEUE:
        operation = "delete" if message.get("changeType") == "deleted" else "upsert"
    if queue == MAILBOX_CHUNKS_QUEUE and isinstance(message.get("kind"), str):  # {"kind", "run", "mailboxIds"}
        operation = f"{message['kind'][:40]}-chunk"
    if queue == PUBLICATIONS_QUEUE:  # {"change", "publication": {"guid", ...}}: about an appointment
        mailbox = DIME_PARTITION
        publication = message.get("publication")
        guid = _text(publication, "guid") if isinstance(publication, dict) else None
        operation = "delete" if message.get("change") == "deleted" else "upsert"
    return PoisonedMessage(
        queue=queue,
        mailbox_id=mailbox,
        direction=direction,
        operation=operation,
        event_id=_text(message, "eventId"),
        appointment_guid=guid,
        payload={"queue": queue, "message": message},
        fingerprint=fingerprint,
        readable=True,
    )


def _text(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    return value[:1024] if isinstance(value, str) and value else None
