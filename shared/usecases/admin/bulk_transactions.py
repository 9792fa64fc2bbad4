"""Retry or archive "all" matching transactions, a page per queue message.

The management API answers 202 when more than a page's worth match, and puts one message on the
bulk queue: {"operation": "retry"|"archive", "filter": {...}, "after": public id | null}. Each
message handles at most PAGE rows (its notifications as one batch of the pipeline), then queues the next message with a
cursor, so no invocation runs long and a crash repeats one page at most. The cursor walks the
failure index in time order: a row that fails again is not visited twice by the same operation.
Archived rows (a retry's other eligible status) leave that status when retried, so they need none.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from shared.adapters.storage.transactions_store import transaction_store
from shared.core.transaction_query import QueryError, TransactionFilter, parse_filter, public_id
from shared.core.transactions import Status, Transaction
from shared.names import BULK_QUEUE
from shared.services import Services

log = logging.getLogger(__name__)

PAGE = 100
OPERATIONS = ("retry", "archive")


def bulk_message(operation: str, query: TransactionFilter, after: str | None = None) -> dict[str, Any]:
    """The filter as parse_filter reads it back (every field of TransactionFilter)."""
    raw = {
        "status": query.status.value if query.status else None,
        "mailbox": query.mailbox,
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "direction": query.direction,
        "errorCode": query.error_code,
    }
    return {"operation": operation, "filter": {k: v for k, v in raw.items() if v}, "after": after}


async def run_bulk(message: dict[str, Any], services: Services) -> dict[str, int]:
    """One page of a bulk operation; queues the next page when more may remain."""
    from shared.usecases.admin.archive import archive, eligible_statuses
    from shared.usecases.retry import retry_many

    operation = str(message.get("operation") or "")
    try:
        if operation not in OPERATIONS:
            raise QueryError(f"unknown bulk operation {operation[:20]!r}")
        query = parse_filter(message.get("filter") or {}, default_status=Status.FAILED)
        if query.status not in eligible_statuses(operation):
            raise QueryError(f"{operation} of {query.status} transactions is refused")
    except QueryError as error:
        log.error("bulk message refused (dropped): %s", error)
        return {"handled": 0}
    after = message.get("after") if query.status is Status.FAILED else None
    store = transaction_store(services)
    if operation == "retry" and query.status is Status.FAILED:
        rows, handled = await _retry_failed_page(services, query, after)
    else:
        rows = await asyncio.to_thread(lambda: list(itertools.islice(store.matching(query, after=after), PAGE)))
        if operation == "archive":
            await asyncio.to_thread(archive, services, store, rows)
        else:
            await retry_many(services, rows, store)  # the page's notifications as one pipeline batch
        handled = len(rows)
    if len(rows) == PAGE:
        last = public_id(rows[-1].mailbox_id, rows[-1].id)
        await services.aqueues.send(BULK_QUEUE, bulk_message(operation, query, last))
    log.info(
        "bulk %s: %d transactions handled%s%s",
        operation,
        handled,
        f", {len(rows) - handled} held by another worker" if handled < len(rows) else "",
        ", more queued" if len(rows) == PAGE else "",
    )
    return {"handled": handled}


async def _retry_failed_page(
    services: Services, query: TransactionFilter, after: str | None
) -> tuple[list[Transaction], int]:
    """A page of open failures retried under claims (`shared.core.retry_claims`): the page read
    once, the rows nobody holds claimed in one table transaction, their notifications run as one
    pipeline batch, their outcomes saved in a few table transactions. A row another worker holds
    (a duplicate message, another process) is left to it: it is imported once. If this worker
    fails, its claims are released so that the redelivered message takes the rows again.
    (The page as read, for the cursor; how many rows this worker ran.)"""
    from shared.core.retry_claims import claim_until, is_held
    from shared.usecases.retry import retry_many

    bulk = services.astore.bulk
    page = await bulk.failed_page(query, after, PAGE)
    now = services.clock()
    free = [row for row in page if not is_held(row.claimed_until, now)]
    claimed = await bulk.claim(free, claim_until(now)) if free else []
    try:
        await retry_many(services, [row.transaction for row in claimed], transaction_store(services))
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: a lapsed claim frees them too
            await asyncio.shield(bulk.release(claimed))
        raise
    return [row.transaction for row in page], len(claimed)
