"""A batch of appointments through read → decide → write → remember (Dime.Scheduler → Outlook).

What every appointment shares is read once for the batch (`BatchReads`); the appointments are
placed concurrently (at most `concurrency` at a time), each under its own lock, so two deliveries
of one appointment never interleave in one process (etag-conditional rows settle it between
processes). A single publication is a batch of one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from shared.core.dime_to_outlook.decision import appointment_refusal
from shared.core.dime_to_outlook.publication import Publication
from shared.core.transactions import SyncError
from shared.services import Services
from shared.usecases.dime_to_outlook.pipeline.decide import (
    PublicationOutcome,
    Target,
    apply_rules,
    kept_targets,
    next_state,
    planned_mailboxes,
    steps,
)
from shared.usecases.dime_to_outlook.pipeline.read import BatchReads, appointment_rows, targets_of
from shared.usecases.dime_to_outlook.pipeline.remember import save_state
from shared.usecases.dime_to_outlook.pipeline.write import execute, settle_intents
from shared.usecases.event_locks import event_locks

log = logging.getLogger(__name__)

CONCURRENCY = 8  # appointments of one batch in flight at once (Graph's per-mailbox limit is the adapter's)


@dataclass(frozen=True)
class Placement:
    """One appointment to place: the publication and how to judge it (see `appointment_refusal`).
    `authoritative`: Dime.Scheduler's own state (the reconcile's listing), which overrides a stale
    verdict; `hold_rule_deletes`: deletes a rule asks for are returned, not executed."""

    pub: Publication
    deleting: bool = False
    authoritative: bool = False
    hold_rule_deletes: bool = False


async def place_batch(
    services: Services, placements: list[Placement], *, reads: BatchReads | None = None, concurrency: int = CONCURRENCY
) -> list[PublicationOutcome | SyncError]:
    """Place every appointment; per placement (in order) its outcome, or the SyncError that
    stopped it (the others go on). Any other exception (storage down) is raised."""
    reads = reads or BatchReads(services)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(placement: Placement) -> PublicationOutcome | SyncError:
        async with gate:
            try:
                return await place(services, placement, reads)
            except SyncError as error:
                return error

    return list(await asyncio.gather(*(one(p) for p in placements)))


async def place(services: Services, placement: Placement, reads: BatchReads | None = None) -> PublicationOutcome:
    """Decide and execute for every resource of one appointment (`authoritative`: its
    LastModifiedDate then replaces the one applied before).

    The rules decide per eligible person whether the appointment reaches their calendar and how it
    looks there: a skipped pair is listed as unmatched with the rule's name and its event, if any,
    deleted (`hold_rule_deletes`: left to the caller's breaker)."""
    reads = reads or BatchReads(services)
    pub, deleting = placement.pub, placement.deleting
    async with event_locks.hold(("appointment", pub.guid)):
        # Read
        state, links = await appointment_rows(services, pub.guid)
        why = appointment_refusal(pub, state, deleting, authoritative=placement.authoritative)
        if why is not None:
            # Even a stale or refused delivery settles what a lost create left behind: judged by
            # the version applied last (the planner's current one), never by this message.
            await settle_intents(services, links, planned_mailboxes(state, links))
            log.info("appointment %s: skip (%s)", pub.guid, why)
            return PublicationOutcome(skipped=why)
        targets: dict[str, Target]
        if deleting:
            targets, unmatched = {}, []
        elif not pub.assignments_known:
            targets, unmatched = kept_targets(state, links)
        else:
            targets, unmatched = await targets_of(services, pub, reads)
        looks = {}
        if targets:
            targets, skipped, looks = apply_rules(await reads.rules(), pub, targets)
            unmatched = [*unmatched, *skipped]
        # Decide, then remember the intent: a tombstone or the planner's version is in place
        # before Graph is touched, so a replay racing this write is already refused.
        fresh = next_state(
            pub,
            state,
            deleting=deleting,
            authoritative=placement.authoritative,
            unmatched=unmatched,
            now=services.clock().isoformat(),
        )
        if fresh is not None:
            await save_state(services, fresh)
        links = await settle_intents(services, links, set(targets))
        planned, held = steps(
            services.settings,
            pub,
            targets,
            looks,
            unmatched,
            links,
            deleting=deleting,
            hold_rule_deletes=placement.hold_rule_deletes,
        )
        # Write (and remember each write)
        outcome = PublicationOutcome(held=held)
        for step in planned:
            outcome.decisions[step.mailbox] = step.decision
            await execute(services, pub, step)
        return outcome
