"""Retry or archive "all" matching transactions, a page per queue message.

The management API answers 202 when more than a page's worth match, and puts one message on the
bulk queue: {"operation": "retry"|"archive", "filter": {...}, "after": public id | null}. Each
message handles at most PAGE rows, then queues the next message with a cursor, so no invocation
runs long and a crash repeats one page at most. The cursor walks the failure index in time order:
a row that fails again is not visited twice by the same operation. Archived rows (a retry's other
eligible status) leave that status when retried, so they need none.

A retry of failed transactions fans out instead of walking page after page (one page at a time
took a minute for 1,500 rows): such a message is a walker that reads the keys only of the next
FAN_OUT_PAGES pages and hands out one page message per PAGE rows, {"after": .., "through": ..}
(the rows after one key up to another), then a walker for what follows. The page messages run
side by side (the host takes up to batchSize at once); each claims its rows
(`shared.core.retry_claims`) so that a duplicate message or another process never runs a row a
second time, runs their notifications as one pipeline batch, and saves the outcomes in a few
table transactions. A worker that dies mid-page loses nothing: its rows are still open failures,
and its message comes back and takes them once the claims lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
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
# Page messages a walker hands out at once: one host batch (host.json batchSize 16), so the pages
# run side by side without one invocation reading more than 1,600 keys (two requests).
FAN_OUT_PAGES = 16
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


def page_message(operation: str, query: TransactionFilter, after: str | None, through: str) -> dict[str, Any]:
    """One page of a fanned-out retry: the rows after `after` (None: from the start) up to `through`."""
    return {**bulk_message(operation, query, after), "through": through}


async def run_bulk(message: dict[str, Any], services: Services) -> dict[str, int]:
    """One page of a bulk operation (or, for a retry of failures, one step of the walk that hands
    the pages out); queues what follows when more may remain."""
    from shared.usecases.admin.archive import archive, eligible_statuses
    from shared.usecases.retry import retry_many

    operation = str(message.get("operation") or "")
    try:
        if operation not in OPERATIONS:
            raise QueryError(f"unknown bulk operation {operation[:20]!r}")
        query = parse_filter(message.get("filter") or {}, default_status=Status.FAILED)
        if query.status not in eligible_statuses(operation):
            raise QueryError(f"{operation} of {query.status} transactions is refused")
        after, through = message.get("after"), message.get("through")
        if not all(value is None or isinstance(value, str) for value in (after, through)):
            raise QueryError("a bulk cursor is a public id")
    except QueryError as error:
        log.error("bulk message refused (dropped): %s", error)
        return {"handled": 0}
    if query.status is not Status.FAILED:
        after = None
    elif operation == "retry":
        if through is None:
            return await _hand_out_pages(services, query, after)
        return await _retry_page(services, query, after, through)
    store = transaction_store(services)
    rows = await asyncio.to_thread(lambda: list(itertools.islice(store.matching(query, after=after), PAGE)))
    if operation == "archive":
        await asyncio.to_thread(archive, services, store, rows)
    else:
        await retry_many(services, rows, store)  # the page's notifications as one pipeline batch
    if len(rows) == PAGE:
        last = public_id(rows[-1].mailbox_id, rows[-1].id)
        await services.aqueues.send(BULK_QUEUE, bulk_message(operation, query, last))
    log.info("bulk %s: %d transactions handled%s", operation, len(rows), ", more queued" if len(rows) == PAGE else "")
    return {"handled": len(rows)}


async def _hand_out_pages(services: Services, query: TransactionFilter, after: str | None) -> dict[str, int]:
    """The walker of a retry of failures: the keys of the next FAN_OUT_PAGES pages, a page
    message per PAGE of them, and a walker for the rest when there may be more. Sent together:
    a crash before all were sent repeats the step, and the claims keep the repeats harmless."""
    keys = await services.astore.bulk.failed_keys(query, after, FAN_OUT_PAGES * PAGE)
    messages: list[dict[str, Any]] = []
    start = after
    for first in range(0, len(keys), PAGE):
        through = keys[min(first + PAGE, len(keys)) - 1]
        messages.append(page_message("retry", query, start, through))
        start = through
    more = len(keys) == FAN_OUT_PAGES * PAGE
    if more:
        messages.append(bulk_message("retry", query, keys[-1]))
    await services.aqueues.send_many(BULK_QUEUE, messages)
    log.info(
        "bulk retry: %d transactions handed out in %d pages%s", len(keys), len(keys) // PAGE + bool(len(keys) % PAGE),
        ", more to walk" if more else "",
    )  # fmt: skip
    return {"handled": 0}


async def _retry_page(services: Services, query: TransactionFilter, after: str | None, through: str) -> dict[str, int]:
    """A page of open failures retried under claims (`shared.core.retry_claims`): the page read
    once, the rows nobody holds claimed in one table transaction, their notifications run as one
    pipeline batch, their outcomes saved in a few table transactions. A row another worker holds
    (a duplicate message, another process) is left to it: it is imported once. If this worker
    fails, its claims are released so that the redelivered message takes the rows again."""
    from shared.core.retry_claims import claim_until, is_held
    from shared.usecases.retry import retry_many

    bulk = services.astore.bulk
    page = await bulk.failed_page(query, after, through, PAGE)
    now = services.clock()
    free = [row for row in page if not is_held(row.claimed_until, now)]
    claimed = await bulk.claim(free, claim_until(now)) if free else []
    try:
        await retry_many(services, [row.transaction for row in claimed], transaction_store(services))
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: a lapsed claim frees them too
            await asyncio.shield(bulk.release(claimed))
        raise
    last = public_id(page[-1].transaction.mailbox_id, page[-1].transaction.id) if page else through
    rest = len(page) == PAGE and last < through
    if rest:  # more rows in the range than a page (rows written into it meanwhile): the rest as a page
        await services.aqueues.send(BULK_QUEUE, page_message("retry", query, last, through))
    held = len(page) - len(claimed)
    log.info(
        "bulk retry: %d transactions handled%s%s", len(claimed), f", {held} held by another worker" if held else "",
        ", the rest of the range queued" if rest else "",
    )  # fmt: skip
    return {"handled": len(claimed)}
