"""Deletes inferred from absence, guarded by the circuit breaker, from any path.

Delta, reconcile, series expansion and notification-driven deletes all delete because something
is *missing*; each asks the same breaker (shared/core/breaker.py) and, when it trips, records the
same visible CIRCUIT_BREAKER_TRIPPED transaction instead of deleting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from shared.core.breaker import Verdict, check_deletes
from shared.core.links import Link
from shared.core.transactions import ErrorCode, Status, Transaction, new_transaction_id
from shared.services import Services

log = logging.getLogger(__name__)

OUTLOOK_TO_DIME = "outlook-to-dime"
BREAKER_SAMPLE = 50  # event ids kept in a breaker alert


async def guarded(
    services: Services,
    mailbox_id: str,
    source: str,
    candidates: Sequence[Link],
    *,
    recent: int = 0,
    empty_listing: bool = False,
    payload: dict | None = None,
    record: bool = True,
) -> tuple[Verdict, str | None]:
    """May these deletes run? `recent`: deletes of the same source already done lately (the
    notification path deletes one at a time, so it counts those of the last 10 minutes).
    Returns the verdict and, when it tripped, the alert message (recorded unless record=False:
    then the caller's failed transaction is the record)."""
    from shared.adapters.storage.syncstate_store import SyncStateStore

    links = await asyncio.to_thread(SyncStateStore(services.store).count_links, mailbox_id)
    links += recent  # the share counts against the links the mailbox had before those deletes
    verdict = check_deletes(
        recent + len(candidates), links, share=services.settings.delete_breaker_share, empty_listing=empty_listing
    )
    if verdict.allowed or not record:
        return verdict, None
    message = await asyncio.to_thread(record_alert, services, mailbox_id, source, verdict, candidates, links, payload)
    return verdict, message


def record_alert(
    services: Services,
    mailbox_id: str,
    source: str,
    verdict: Verdict,
    candidates: Sequence[Link],
    links: int,
    payload: dict | None = None,
) -> str:
    message = f"circuit breaker ({source}): {verdict.message}"
    log.error("mailbox %s: %s", mailbox_id, message)
    now = services.clock()
    services.store.add_transaction(
        Transaction(
            id=new_transaction_id(now),
            mailbox_id=mailbox_id,
            direction=OUTLOOK_TO_DIME,
            operation="delete",
            status=Status.FAILED,
            created_at=now.isoformat(),
            event_id=candidates[0].event_id if len(candidates) == 1 else None,
            reason=verdict.reason,
            error_code=ErrorCode.CIRCUIT_BREAKER_TRIPPED.value,
            message=message,
            payload={
                "source": source,
                "deletes": len(candidates),
                "links": links,
                "eventIds": [link.event_id for link in candidates[:BREAKER_SAMPLE]],
                **(payload or {}),
            },
        )
    )
    return message
