"""Retrying failed transactions: the timer (automatic, transient codes, backoff) and the admin API.

A retry runs the same use case as the first attempt: a notification payload goes through
`apply_notification` again, a publication through `apply_publication` (idempotent: deterministic
GUIDs and transactionIds, links written after the write);
a message of another queue is sent back to that queue, whose own function then runs it (if it
poisons again, the poison handler reopens this transaction). Success turns the row into
`succeeded` (the failure index row is removed, the error fields are cleared); failure counts an
attempt and pushes the next one out (1, 2, 4 ... minutes, capped at 6 h). Permanent codes are never
retried by the timer, and nothing is retried automatically after RETRY_MAX_ATTEMPTS attempts: those wait, listed, for a
person (a manual retry runs them whatever their code or count).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.adapters.storage.transactions_store import TransactionStore, transaction_store
from shared.core.backoff import is_due, next_attempt_at
from shared.core.outlook_to_dime.packing import is_packed
from shared.core.transactions import ErrorCode, Status, SyncError, Transaction
from shared.names import NOTIFICATIONS_QUEUE, PUBLICATIONS_QUEUE, TRIGGER_QUEUES
from shared.services import Services
from shared.usecases.housekeeping import purge_expired
from shared.usecases.poison import REQUEUED

log = logging.getLogger(__name__)

MAX_PER_RUN = 200  # the timer's share of work per run; the rest waits for the next run


@dataclass(frozen=True)
class RetryOutcome:
    transaction: Transaction
    retried: bool  # False: nothing to retry (no payload a retry could use)


def is_retryable(transaction: Transaction) -> bool:
    payload = transaction.payload
    return payload.get("queue") in TRIGGER_QUEUES and ("message" in payload or "raw" in payload)


def automatically_retried(code: str | None) -> bool:
    try:
        return ErrorCode(code or "").transient
    except ValueError:
        return False


def _moment(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def due_for_retry(transaction: Transaction, now: datetime, max_attempts: int) -> bool:
    return (
        transaction.status is Status.FAILED
        and automatically_retried(transaction.error_code)
        and transaction.scheduled_attempts < max_attempts
        and is_due(_moment(transaction.next_attempt_at), now)
        and is_retryable(transaction)
    )


async def retry_due(services: Services) -> dict[str, Any]:
    """The retry timer: every due, transient failure is run again (after the messages that even
    the poison functions could not handle became failed transactions too); then the housekeeping
    of rows kept for late deliveries (tombstones, last-error notes), logged in the same line."""
    from shared.core.runs import RETRY
    from shared.usecases.poison import drain_poison_poison
    from shared.usecases.timer_runs import save_timer_run

    started = services.clock()
    poison_poison = await asyncio.to_thread(drain_poison_poison, services)
    store = transaction_store(services)
    now = services.clock()
    failed = await asyncio.to_thread(lambda: list(store.failed()))
    due = [t for t in failed if due_for_retry(t, now, services.settings.retry_max_attempts)][:MAX_PER_RUN]
    summary = {"open": len(failed), "due": len(due), "succeeded": 0, "failed": 0, "poisonPoison": poison_poison}
    for transaction in due:
        outcome = await retry_transaction(services, transaction, store)
        summary["succeeded" if outcome.transaction.status is Status.SUCCEEDED else "failed"] += 1
    summary["purged"] = await asyncio.to_thread(purge_expired, services)
    log.info("retry timer: %s", summary)
    failures = [f"{summary['failed']} of {summary['due']} due failed again"] if summary["failed"] else []
    # changes: open failures seen; writes: retries that succeeded; skipped: open ones not yet due
    await save_timer_run(
        services, RETRY, started, changes=len(failed), writes=summary["succeeded"],
        skipped=len(failed) - len(due), errors=failures,
    )  # fmt: skip
    return summary


async def retry_transaction(
    services: Services, transaction: Transaction, store: TransactionStore | None = None
) -> RetryOutcome:
    """Run one transaction again (any status, any code: callers decide what is eligible)."""
    store = store or transaction_store(services)
    if not is_retryable(transaction):
        return RetryOutcome(transaction, retried=False)
    payload: dict[str, Any] = transaction.payload
    queue = payload["queue"]
    try:
        if (
            queue == NOTIFICATIONS_QUEUE
            and isinstance(payload.get("message"), dict)
            and not is_packed(payload["message"])
        ):
            from shared.usecases.outlook_to_dime.notification_batch import apply_notification

            outcome = await apply_notification(payload["message"], services, record_failures=False)
            if outcome.error is not None:
                raise outcome.error
            assert outcome.decision is not None
            reason = f"retried: {outcome.decision.action.value} ({outcome.decision.reason})"
        elif queue == PUBLICATIONS_QUEUE and isinstance(payload.get("message"), dict):
            from shared.usecases.dime_to_outlook.place_appointment import apply_publication

            placed = await apply_publication(payload["message"], services, record_failures=False)
            if placed.error is not None:
                raise placed.error
            reason = "retried: " + (placed.skipped or ", ".join(sorted({d.reason for d in placed.decisions.values()})))
        else:
            await asyncio.to_thread(_requeue, services, queue, payload)
            reason = REQUEUED + queue
    except SyncError as error:
        _failed(services, transaction, error.code.value, error.message, error.retry_after)
    except Exception as error:  # an unreadable message, a storage hiccup: still counted and visible
        log.exception("retry of transaction %s failed", transaction.id)
        _failed(services, transaction, transaction.error_code or ErrorCode.POISON_MESSAGE.value, _describe(error))
    else:
        transaction.status = Status.SUCCEEDED
        transaction.attempts += 1
        transaction.reason = reason
        transaction.error_code = None  # a success carries no stale error (the attempts count tells it was retried)
        transaction.message = None
        transaction.next_attempt_at = None
        transaction.updated_at = services.clock().isoformat()
    await asyncio.to_thread(store.save, transaction)
    return RetryOutcome(transaction, retried=True)


def _failed(
    services: Services, transaction: Transaction, code: str, message: str, retry_after: float | None = None
) -> None:
    now = services.clock()
    transaction.status = Status.FAILED
    transaction.attempts += 1
    transaction.error_code = code
    transaction.message = message
    transaction.updated_at = now.isoformat()
    transaction.next_attempt_at = next_attempt_at(now, transaction.scheduled_attempts, retry_after).isoformat()


def _requeue(services: Services, queue: str, payload: dict[str, Any]) -> None:
    if "message" in payload:
        services.queues.send(queue, payload["message"])
    else:
        services.queues.send_raw(queue, str(payload["raw"]).encode("utf-8"))


def _describe(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}"[:1000] if text else type(error).__name__
