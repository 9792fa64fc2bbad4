"""Retrying failed transactions: the timer (automatic, transient codes, backoff) and the admin API.

A retry runs the same use case as the first attempt: a notification payload goes through the
Outlook → Dime.Scheduler pipeline again (many retries as one batch: `retry_many`), a publication
through `apply_publication` (idempotent: deterministic GUIDs and transactionIds, links written
after the write);
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
CONCURRENT_RETRIES = 8  # retries of other queues' messages at once


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
    for outcome in await retry_many(services, due, store):
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
        _succeeded(services, transaction, reason)
    await asyncio.to_thread(store.save, transaction)
    return RetryOutcome(transaction, retried=True)


def _notification(transaction: Transaction) -> dict[str, Any] | None:
    """The plain notification a retryable transaction carries, else None."""
    payload = transaction.payload
    message = payload.get("message")
    if payload.get("queue") == NOTIFICATIONS_QUEUE and isinstance(message, dict) and not is_packed(message):
        return message
    return None


async def retry_many(
    services: Services, transactions: list[Transaction], store: TransactionStore | None = None
) -> list[RetryOutcome]:
    """Run many transactions again: the notifications among them as one pipeline batch (one
    resource read per mailbox, links and events read together, one /import per 100), the others
    one by one (`retry_transaction`), a few at a time. An outcome per transaction, in order."""
    from shared.usecases.outlook_to_dime import pipeline
    from shared.usecases.outlook_to_dime.notification_batch import change_of

    store = store or transaction_store(services)
    batched: list[tuple[int, Transaction, Any]] = []
    others: list[tuple[int, Transaction]] = []
    for index, transaction in enumerate(transactions):
        message = _notification(transaction) if is_retryable(transaction) else None
        try:
            change = change_of(message) if message is not None else None
        except (KeyError, TypeError, ValueError):
            change = None  # unreadable: retry_transaction records why
        if change is None:
            others.append((index, transaction))
        else:
            batched.append((index, transaction, change))
    results: list[RetryOutcome | None] = [None] * len(transactions)
    if batched:
        try:
            outcomes = await pipeline.run(services, [change for _, _, change in batched])
        except Exception as error:  # storage failed for the batch: each counts an attempt, visibly
            log.exception("a batch of %d retries failed", len(batched))
            for _, transaction, _ in batched:
                _failed(
                    services, transaction, transaction.error_code or ErrorCode.POISON_MESSAGE.value, _describe(error)
                )
        else:
            for (_, transaction, _), outcome in zip(batched, outcomes, strict=True):
                if outcome.error is not None:
                    error = outcome.error
                    _failed(services, transaction, error.code.value, error.message, error.retry_after)
                else:
                    assert outcome.decision is not None
                    _succeeded(
                        services, transaction, f"retried: {outcome.decision.action.value} ({outcome.decision.reason})"
                    )
        # Table transactions of up to 100 rows per partition (the failure index, each mailbox's rows):
        # a page of 100 retries in a few requests, no longer three per row.
        await services.astore.bulk.save_many([transaction for _, transaction, _ in batched])
        for index, transaction, _ in batched:
            results[index] = RetryOutcome(transaction, retried=True)
    limit = asyncio.Semaphore(CONCURRENT_RETRIES)

    async def one(index: int, transaction: Transaction) -> None:
        async with limit:
            results[index] = await retry_transaction(services, transaction, store)

    await asyncio.gather(*(one(index, transaction) for index, transaction in others))
    return [result for result in results if result is not None]


def _succeeded(services: Services, transaction: Transaction, reason: str) -> None:
    transaction.status = Status.SUCCEEDED
    transaction.attempts += 1
    transaction.reason = reason
    transaction.error_code = None  # a success carries no stale error (the attempts count tells it was retried)
    transaction.message = None
    transaction.next_attempt_at = None
    transaction.updated_at = services.clock().isoformat()


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
