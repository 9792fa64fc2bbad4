"""Remember: the rows and transactions that record what the pipeline did (Dime.Scheduler → Outlook).

Every save is etag-conditional (`ConcurrentUpdate` when another instance wrote first); a lost race
becomes a transient SyncError, so the queue delivers again and the next attempt decides from fresh
rows (a repeated create carries the same transactionId, so it cannot duplicate).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.adapters.storage.tables import ConcurrentUpdate
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.dime_to_outlook.outlook_event import stored_hash
from shared.core.events import Event, EventFormatError, event_from_graph
from shared.core.links import DIME_ORIGIN, Link
from shared.core.shown import Shown
from shared.core.transactions import DIME_PARTITION, ErrorCode, Status, SyncError, Transaction, new_transaction_id
from shared.names import PUBLICATIONS_QUEUE
from shared.services import Services

log = logging.getLogger(__name__)

DIME_TO_OUTLOOK = "dime-to-outlook"


async def save_state(services: Services, state: AppointmentState) -> AppointmentState:
    try:
        return await services.astore.eventlinks.save_state(state)
    except ConcurrentUpdate:
        raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"appointment {state.guid} changed under us") from None


async def save_event_link(services: Services, link: EventLink) -> EventLink:
    try:
        return await services.astore.eventlinks.save_link(link)
    except ConcurrentUpdate:
        # Another instance wrote this pair meanwhile: deliver again and decide from fresh state
        # (a repeated create carries the same transactionId, so it cannot duplicate).
        raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of {link.appointment_guid} changed under us") from None


async def remember_outlook_side(
    services: Services, mailbox: str, answer: dict[str, Any], guid: str, email: str, shown: Shown | None = None
) -> None:
    """The Outlook → Dime.Scheduler link (origin "dime"): its changeKey makes every echo of this
    write a skip without a Graph read, and its hash tells an echo from a person's edit."""
    try:
        event: Event | None = event_from_graph(answer)
    except EventFormatError:
        event = None
    for _ in range(3):
        existing = await services.astore.get_link(mailbox, answer["id"])
        fresh = Link(
            mailbox_id=mailbox,
            event_id=answer["id"],
            appointment_guid=guid,
            origin=DIME_ORIGIN,
            change_key=answer.get("changeKey") if isinstance(answer.get("changeKey"), str) else None,
            content_hash=stored_hash(event) if event else None,
            resource_email=email,
            synced_at=services.clock().isoformat(),
            etag=existing.etag if existing else None,
            subject=shown.subject if shown else None,
            start=shown.start if shown else None,
        )
        try:
            await services.astore.save_link(fresh)
            return
        except ConcurrentUpdate:
            continue
    raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of event {answer['id'][-12:]} kept changing")


async def forget_outlook_side(services: Services, mailbox: str, event_id: str) -> None:
    for _ in range(3):
        existing = await services.astore.get_link(mailbox, event_id)
        if existing is None:
            return
        try:
            await services.astore.delete_link(existing)
            return
        except ConcurrentUpdate:
            continue


async def record_transaction(
    services: Services,
    mailbox: str,
    event_id: str | None,
    guid: str,
    operation: str,
    reason: str,
    shown: Shown | None = None,
) -> None:
    now = services.clock()
    transaction = Transaction(
        id=new_transaction_id(now),
        mailbox_id=mailbox,
        direction=DIME_TO_OUTLOOK,
        operation=operation,
        status=Status.SUCCEEDED,
        created_at=now.isoformat(),
        event_id=event_id,
        appointment_guid=guid,
        reason=reason,
        subject=shown.subject if shown else None,
        start=shown.start if shown else None,
    )
    await services.astore.add_transaction(transaction)


async def record_failure(services: Services, guid: str, error: SyncError, message: dict[str, Any]) -> None:
    """A permanent failure of a publication: a failed transaction carrying the message (retryable)."""
    now = services.clock()
    await services.astore.add_transaction(
        Transaction(
            id=new_transaction_id(now),
            mailbox_id=DIME_PARTITION,
            direction=DIME_TO_OUTLOOK,
            operation="delete" if message.get("change") == "deleted" else "upsert",
            status=Status.FAILED,
            created_at=now.isoformat(),
            appointment_guid=guid or None,  # "" while only the internal Id is known
            error_code=error.code.value,
            message=error.message,
            payload={"queue": PUBLICATIONS_QUEUE, "message": message},
        )
    )
    log.error("appointment %s failed permanently (%s): %s", guid, error.code.value, error.message)
