"""Step 4 of the pipeline: what the writes leave in Table Storage.

Links are written only after Dime.Scheduler accepted the write (a failure is retried, never
forgotten), etag-conditionally: new links of a mailbox in one table transaction (all or nothing;
when one exists already, each is tried on its own to find the one another instance wrote), changed
ones each against the etag they were read with. A link that changed under us is a lost race: the
event is read and decided again (`Item.lost_race`), and what we wrote is first made durable as an
unproven link (`hold_unlinked`). Tombstones mark events deleted from Outlook (a late `updated`
must not revive them); success transactions go in one table batch per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from shared.core.decision import Action
from shared.core.links import Link
from shared.core.outlook_to_dime.appointments import MissingDeleteValues, delete_call
from shared.core.outlook_to_dime.triage import Change, Step, answered, failure, orphan_deleted, success
from shared.core.transactions import ErrorCode, SyncError, Transaction
from shared.services import Services
from shared.usecases.outlook_to_dime.pipeline.item import Item

log = logging.getLogger(__name__)


async def remember_all(services: Services, items: list[Item], successes: list[Transaction]) -> None:
    """Links, tombstones and success transactions of the written items (failures stay failed)."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    now = services.clock()
    new: dict[str, list[Item]] = {}
    others: list[Item] = []
    for item in items:
        v = item.verdict
        if item.outcome is not None or v is None:
            continue
        if v.step is Step.DONE:
            if v.fresh is not None:  # an unproven link the primary calendar lists: ordinary again
                with contextlib.suppress(ConcurrentUpdate):
                    await services.astore.save_link(v.fresh)
            item.done(v.decision)
        elif v.step is Step.WRITE and v.decision.action is Action.UPSERT and v.link is None and item.written:
            new.setdefault(item.change.mailbox_id, []).append(item)
        elif v.step is Step.WRITE and (item.written or v.call is None):
            others.append(item)
    await asyncio.gather(
        *(_insert_new(services, group) for group in new.values()), *(_save_one(services, item) for item in others)
    )
    store = services.astore.syncstate
    for item in items:
        v = item.verdict
        if item.outcome is not None or v is None or v.step is not Step.WRITE:
            continue
        if not item.written and v.call is not None:
            continue  # its import failed: the item failed with it
        mailbox, event_id = item.change.key
        if v.decision.action is Action.UPSERT and v.clear_tombstone:
            await store.remove_tombstone(mailbox, event_id)
        if v.decision.action is Action.DELETE and v.gone:
            await store.add_tombstone(mailbox, event_id, now)
            if not item.change.breaker_passed:
                await store.note_webhook_delete(mailbox, now)
        if v.decision.action is not Action.RELINK:
            successes.append(success(item.resource, mailbox, event_id, v, now))
        item.done(v.decision)


def _fresh(item: Item) -> Link | None:
    v = item.verdict
    assert v is not None
    return answered(v.fresh, item.answer) if v.fresh is not None and v.decision.action is Action.UPSERT else v.fresh


async def _insert_new(services: Services, group: list[Item]) -> None:
    """A mailbox's new links in one table transaction; when one exists already, one by one."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    links = [_fresh(item) for item in group]
    try:
        await services.astore.insert_links(links)
    except ConcurrentUpdate:
        log.info("a batch of %d links met a link written meanwhile: one by one", len(links))
        await asyncio.gather(*(_save_one(services, item) for item in group))


async def _save_one(services: Services, item: Item) -> None:
    """One link written, changed or deleted against the etag it was read with."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    v = item.verdict
    assert v is not None
    fresh = _fresh(item)
    try:
        if v.decision.action is Action.DELETE:
            assert v.link is not None
            await services.astore.delete_link(v.link)
        else:
            assert fresh is not None
            await services.astore.save_link(fresh)
    except ConcurrentUpdate:
        written = fresh if v.decision.action is Action.UPSERT else None
        if written is not None:
            await hold_unlinked(services, written)
        item.lost_race(written, deleted=v.decision.action is Action.DELETE)


async def hold_unlinked(services: Services, written: Link) -> None:
    """We wrote an appointment and lost the link to another instance: before anything that can fail
    on Graph or Dime.Scheduler, make that write durable where every later delivery looks first.

    When the winner removed the link (it deleted the appointment), our write has resurrected the
    appointment and only this process's memory knew it. The link is written again, marked
    unproven: the fresh decision (now, or a redelivery, even with the same changeKey) trusts no
    GET 200 but proves the event is in the primary calendar, and deletes the appointment
    otherwise. When the winner kept a link, its link stands and `Race.must_rewrite` compares."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    held = replace(written, etag=None, unproven=True)
    try:
        await services.astore.save_link(held)
        log.info(
            "event %s of %s: our write lost its link; held it as unproven", written.event_id[-12:], written.mailbox_id
        )
    except ConcurrentUpdate:
        pass  # a link exists: the winner's, which the fresh decision starts from


async def remove_orphan(services: Services, written: Link) -> None:
    """We wrote an appointment, lost the link to another instance, and the fresh decision keeps no
    appointment: unless a link exists now, delete what we wrote, or it would stay on the board
    with nothing pointing at it."""
    link = await services.astore.get_link(written.mailbox_id, written.event_id)
    if link is not None:
        return
    try:
        call = delete_call(
            written.appointment_guid, written.resource_email, written.kept_values, written.appointment_id
        )
    except MissingDeleteValues as error:
        raise SyncError(
            ErrorCode.DIME_REJECTED, f"cannot delete appointment {written.appointment_guid}: {error}"
        ) from None
    await services.adime.run_import([call])
    log.info(
        "event %s of %s: deleted the appointment our lost race left unlinked",
        written.event_id[-12:],
        written.mailbox_id,
    )
    await services.astore.add_transaction(orphan_deleted(written, services.clock()))


async def record_successes(services: Services, successes: list[Transaction]) -> None:
    """Success transactions in one table batch per mailbox. They are history for the admin views,
    written after the writes they describe: a storage failure here is logged, never a reason to
    run the writes again."""
    if not successes:
        return
    try:
        await services.astore.transactions.add_many(successes)
    except Exception:
        log.exception("could not record %d success transactions", len(successes))


async def record_failures(services: Services, failed: list[tuple[Change, SyncError]]) -> None:
    """A failed transaction per change that could not be synchronised: visible and retryable."""
    now = services.clock()
    for change, error in failed:
        log.error("failed permanently (%s): %s", error.code.value, error.message)
        await services.astore.add_transaction(failure(change, error, services.settings.graph_tenant_id, now))
