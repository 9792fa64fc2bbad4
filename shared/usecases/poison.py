"""The poison handlers: a message that failed every delivery becomes a visible failed transaction.

Nothing is dropped: a message that is not even JSON is kept verbatim (mailbox "unknown"). The code
is POISON_MESSAGE, which the retry timer retries with backoff: a notification is re-run through the
notification worker, a message of another queue is sent back to its queue. If a re-queued message
poisons again, its fingerprint finds the same transaction, which is reopened (attempts + its deliveries), so
retries stay bounded by RETRY_MAX_ATTEMPTS instead of cycling for ever.

Why it poisoned stays visible: a trigger whose delivery fails notes that error and the delivery's
number under the message's fingerprint (`keeping_last_error`; a write on failure only, none on a
first-delivery success), and the poison handler gives the transaction that code (DIME_UNAVAILABLE,
GRAPH_THROTTLED, ...: transient, so the retry timer still retries it with backoff) and a message that
says it was poisoned after N deliveries. A message whose failures were not ours to classify (not
JSON, a bug, a storage error) keeps the code POISON_MESSAGE, with the last failure's text.

Attempts count every try: a message poisoned after 5 deliveries is a transaction with 5 attempts
(the poison queue's copy is a new message whose dequeue count starts again at 1, so the number
comes from the note). The retry schedule counts those deliveries as one (`scheduled_attempts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from shared.adapters.storage.transactions_store import TransactionStore, transaction_store
from shared.core.backoff import next_attempt_at
from shared.core.poison import describe_poison, fingerprint_of
from shared.core.transactions import ErrorCode, Status, SyncError, Transaction, new_transaction_id
from shared.names import POISON_POISON_QUEUES, POISON_SUFFIX
from shared.services import Services

log = logging.getLogger(__name__)

REQUEUED = "requeued to "


@contextlib.asynccontextmanager
async def keeping_last_error(
    queue: str, body: bytes, dequeue_count: int | None, services: Services
) -> AsyncIterator[None]:
    """Around one delivery of a queue trigger: a transient failure is noted (then re-raised, so the
    host delivers again or poisons); a redelivery that succeeds forgets the note."""
    try:
        yield
    except SyncError as error:
        if error.code.transient:
            note = (fingerprint_of(queue, body), error.code.value, error.message, dequeue_count or 0)
            await asyncio.to_thread(transaction_store(services).remember_last_error, *note)
        else:
            await _note_unclassified(queue, body, dequeue_count, services, f"{error.code.value}: {error.message}")
        raise
    except Exception as error:
        # A bug or a storage error: the host delivers again, then poisons. Noted too, so the
        # poisoned transaction tells how many deliveries failed and the last failure's text.
        await _note_unclassified(queue, body, dequeue_count, services, f"{type(error).__name__}: {error}")
        raise
    else:
        if (dequeue_count or 0) > 1:  # only a message that failed before can have a note
            await asyncio.to_thread(transaction_store(services).forget_last_error, fingerprint_of(queue, body))


async def _note_unclassified(queue: str, body: bytes, dequeue_count: int | None, services: Services, text: str) -> None:
    """The note of a failure that is not ours to classify (code POISON_MESSAGE). A note that
    cannot be written (storage down) is logged; the original failure is what the host must see."""
    note = (fingerprint_of(queue, body), ErrorCode.POISON_MESSAGE.value, text[:1000], dequeue_count or 0)
    try:
        await asyncio.to_thread(transaction_store(services).remember_last_error, *note)
    except Exception:
        log.exception("could not note the failure of a delivery on %s", queue)


def _poison_cause(store: TransactionStore, fingerprint: str) -> tuple[ErrorCode, str | None, int | None]:
    """The code the transaction gets (the last transient error, else POISON_MESSAGE), that error's
    message and how many deliveries had failed."""
    note = store.last_error(fingerprint)
    if note is None:
        return ErrorCode.POISON_MESSAGE, None, None
    code, message, deliveries = note
    try:
        return ErrorCode(code), message, deliveries or None
    except ValueError:
        return ErrorCode.POISON_MESSAGE, message, deliveries or None


def record_poisoned(queue: str, body: bytes, services: Services, *, found_in: str | None = None) -> Transaction:
    """Turn one poisoned message of `queue` into a failed transaction (or reopen its old one);
    `found_in` names the queue it was taken from ("<queue>-poison" unless said otherwise)."""
    poisoned = describe_poison(queue, body)
    store = transaction_store(services)
    now = services.clock()
    code, cause, deliveries = _poison_cause(store, poisoned.fingerprint)
    every = f"all {deliveries} deliveries" if deliveries else "every delivery"
    tries = deliveries or 1  # unknown (no note): at least the delivery that poisoned it
    text = f"poisoned: the message failed {every} on queue {queue} and was moved to {found_in or queue + POISON_SUFFIX}"
    if not poisoned.readable:
        text += "; it is not valid JSON and is kept verbatim"
    if cause is not None and code is ErrorCode.POISON_MESSAGE:
        text += f"; the last delivery failed: {cause}"
    elif cause is not None:
        text += f"; the last delivery failed with {code.value}: {cause}"
    existing = store.by_fingerprint(poisoned.fingerprint)
    if existing is not None and _reopenable(existing):
        existing.status = Status.FAILED
        existing.attempts += tries
        existing.redeliveries += tries - 1
        existing.error_code = code.value
        existing.message = text
        existing.updated_at = now.isoformat()
        existing.next_attempt_at = next_attempt_at(now, existing.scheduled_attempts).isoformat()
        store.save(existing)
        store.forget_last_error(poisoned.fingerprint)
        log.error("poisoned again on %s: transaction %s reopened (attempt %d)", queue, existing.id, existing.attempts)
        return existing
    transaction = Transaction(
        id=new_transaction_id(now),
        mailbox_id=poisoned.mailbox_id,
        direction=poisoned.direction,
        operation=poisoned.operation,
        status=Status.FAILED,
        created_at=now.isoformat(),
        updated_at=now.isoformat(),
        event_id=poisoned.event_id,
        appointment_guid=poisoned.appointment_guid,
        error_code=code.value,
        message=text,
        attempts=tries,
        redeliveries=tries - 1,
        payload=poisoned.payload,
        next_attempt_at=next_attempt_at(now, 1).isoformat(),
    )
    store.add(transaction)
    store.remember_fingerprint(poisoned.fingerprint, transaction)
    store.forget_last_error(poisoned.fingerprint)
    log.error("poisoned message on %s became failed transaction %s (%s)", queue, transaction.id, code.value)
    return transaction


def _reopenable(transaction: Transaction) -> bool:
    """Still failing, or handed back to its queue by a retry (whose outcome we never saw)."""
    return transaction.status is Status.FAILED or (
        transaction.status is Status.SUCCEEDED and (transaction.reason or "").startswith(REQUEUED)
    )


DRAIN_BATCH = 32


def drain_poison_poison(services: Services, *, max_messages: int = 500) -> int:
    """Messages that poisoned the poison function too land in "<queue>-poison-poison", which no
    function reads: turn each into a failed transaction of its trigger queue, then delete it
    (a message we cannot record stays in the queue for the next run). Returns how many."""
    drained = 0
    for queue in POISON_POISON_QUEUES:
        trigger = queue.removesuffix(POISON_SUFFIX * 2)
        client = services.queues.client(queue)
        while drained < max_messages:
            batch = list(client.receive_messages(messages_per_page=DRAIN_BATCH, max_messages=DRAIN_BATCH))
            if not batch:
                break
            for message in batch:
                record_poisoned(trigger, message.content, services, found_in=queue)
                client.delete_message(message)
                drained += 1
    if drained:
        log.error("drained %d messages from the -poison-poison queues into failed transactions", drained)
    return drained
