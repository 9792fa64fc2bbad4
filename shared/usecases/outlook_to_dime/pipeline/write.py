"""Step 3 of the pipeline: the writes to Dime.Scheduler, one `/import` per 100 calls.

An import takes calls of any resources and applies them all or nothing (dimescheduler.md). So a
refused import is split in halves and each half tried again, and one of at most four calls is
tried call by call, down to the one call Dime.Scheduler refuses, which becomes that event's
permanent failure while the others reach the board. A transient failure (unavailable, throttled)
fails every event of the import at once (splitting would only multiply requests to a service that
is down). Before an import may publish an appointment new to us, its GUID is marked Outlook-born
(never written back to Outlook as a second event). Deletes of events gone from Outlook that no
set-wise breaker allowed (notifications) pass the circuit breaker first, counted per mailbox.
"""

from __future__ import annotations

import asyncio
import logging

from shared.core.outlook_to_dime.appointments import appointment_ids
from shared.core.outlook_to_dime.triage import Step
from shared.core.transactions import ErrorCode, SyncError
from shared.services import Services
from shared.usecases.outlook_to_dime.breaker_alerts import guarded
from shared.usecases.outlook_to_dime.pipeline.item import Item

log = logging.getLogger(__name__)

IMPORT_LIMIT = 100  # calls per /import
ONE_BY_ONE = 4  # a refused import this small is tried call by call (halving would cost more imports)


async def check_breaker(services: Services, items: list[Item]) -> None:
    """Notification deletes of events gone from Outlook, counted per mailbox with those of the
    last minutes: a tripped breaker fails them (a failed transaction carrying the notification,
    retryable) and deletes nothing."""
    by_mailbox: dict[str, list[Item]] = {}
    for item in items:
        v = item.verdict
        if item.outcome is None and v is not None and v.breaker_needed and not item.change.breaker_passed:
            by_mailbox.setdefault(item.change.mailbox_id, []).append(item)
    now = services.clock()
    for mailbox, group in by_mailbox.items():
        recent = await services.astore.syncstate.recent_webhook_deletes(mailbox, now)
        links = [item.verdict.link for item in group if item.verdict and item.verdict.link]
        verdict, _ = await guarded(services, mailbox, "notifications", links, recent=len(recent), record=False)
        if not verdict.allowed:
            for item in group:
                item.fail(
                    SyncError(ErrorCode.CIRCUIT_BREAKER_TRIPPED, f"circuit breaker (notifications): {verdict.message}")
                )


async def planner_owned_all(services: Services, items: list[Item]) -> None:
    """Events this app wrote for a planner appointment: never imported (no loop); an echo costs
    no write, a person's edit follows DIME_OUTLOOK_EDITS (`planner_owned` of the other direction)."""
    from shared.usecases.dime_to_outlook.place_appointment import planner_owned

    async def one(item: Item) -> None:
        v = item.verdict
        assert v is not None and item.resource is not None
        try:
            item.done(await planner_owned(services, item.resource, item.change.event_id, v.event, v.link))
        except SyncError as error:
            item.fail(error)

    await asyncio.gather(*(one(i) for i in items if i.outcome is None and i.verdict and i.verdict.step is Step.PLANNER))


async def import_all(services: Services, items: list[Item]) -> None:
    """Every upsert and delete of the batch, 100 calls per /import (see the module docstring)."""
    writing = [i for i in items if i.outcome is None and i.verdict and i.verdict.call is not None]
    if not writing:
        return
    new = [i.verdict.guid for i in writing if i.verdict.link is None and i.verdict.guid]
    if new:
        await services.astore.eventlinks.mark_outlook_origins(new)
    chunks = [writing[start : start + IMPORT_LIMIT] for start in range(0, len(writing), IMPORT_LIMIT)]
    await asyncio.gather(*(_import(services, chunk) for chunk in chunks))


async def _import(services: Services, chunk: list[Item]) -> None:
    try:
        answer = await services.adime.run_import([item.verdict.call for item in chunk])
    except SyncError as error:
        if len(chunk) == 1 or error.code.transient:
            for item in chunk:
                item.fail(error)
            return
        if len(chunk) <= ONE_BY_ONE:
            log.info("an import of %d calls was refused (%s): one by one", len(chunk), error)
            await asyncio.gather(*(_import(services, [item]) for item in chunk))
            return
        log.info("an import of %d calls was refused (%s): halves again", len(chunk), error)
        half = len(chunk) // 2
        await asyncio.gather(_import(services, chunk[:half]), _import(services, chunk[half:]))
        return
    ids = appointment_ids(answer or {})  # read once for the whole import
    for item in chunk:
        item.answer, item.written = ids, True
