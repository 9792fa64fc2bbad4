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
import itertools
import logging
from typing import Any

from shared.adapters.storage.transactions_store import transaction_store
from shared.core.transaction_query import QueryError, TransactionFilter, parse_filter, public_id
from shared.core.transactions import Status
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
    rows = await asyncio.to_thread(lambda: list(itertools.islice(store.matching(query, after=after), PAGE)))
    if operation == "archive":
        await asyncio.to_thread(archive, services, store, rows)
    else:
        await retry_many(services, rows, store)  # the page's notifications as one pipeline batch
    if len(rows) == PAGE:
        last = public_id(rows[-1].mailbox_id, rows[-1].id)
        await asyncio.to_thread(services.queues.send, BULK_QUEUE, bulk_message(operation, query, last))
    log.info("bulk %s: %d transactions handled%s", operation, len(rows), ", more queued" if len(rows) == PAGE else "")
    return {"handled": len(rows)}
