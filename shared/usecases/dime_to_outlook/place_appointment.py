"""The entries of the Dime.Scheduler → Outlook pipeline (`pipeline/`): publications, and Outlook
edits of planner-owned events.

The mirror of the Outlook → Dime.Scheduler path. Every path that learns of a planner change ends
in `pipeline.batch.place_batch`: the publication worker (`apply_publication`, a batch of one),
the reconcile timer (`apply_publications`, every listed appointment in one batch), retries, and
the Outlook → Dime.Scheduler path when a person edited a planner-owned event (`planner_owned`).

Per appointment: the eligible assigned resources each get one Outlook event; the others' events
are deleted. Per (appointment, mailbox) the decision is create / PATCH (only when what we would
send changed) / delete / skip, with a reason; every Graph write is a transaction `dime-to-outlook`.
The steps are found by file name: `pipeline/read.py`, `decide.py`, `write.py`, `remember.py`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.adapters.storage.tables import ConcurrentUpdate
from shared.core.decision import Action, Decision
from shared.core.dime_to_outlook.eligibility import assignments_refusal
from shared.core.dime_to_outlook.outlook_event import same_content, stored_hash
from shared.core.dime_to_outlook.publication import Publication, clamped
from shared.core.dime_to_outlook.rule_facts import facts_of
from shared.core.events import Event
from shared.core.links import Link
from shared.core.resources import Resource
from shared.core.shown import shown_of
from shared.core.transactions import ErrorCode, SyncError
from shared.services import Services
from shared.usecases.dime_to_outlook.pipeline.batch import Placement, place_batch
from shared.usecases.dime_to_outlook.pipeline.decide import (
    RULE_PREFIX,
    PublicationOutcome,
    Target,
    body_for,
)
from shared.usecases.dime_to_outlook.pipeline.read import (
    BatchReads,
    Mailboxes,
    directory_of,
    forget_mailboxes,
    mailbox_for,
    resolve_guid,
    resource_directory,
    targets_of,
)
from shared.usecases.dime_to_outlook.pipeline.remember import (
    DIME_TO_OUTLOOK,
    forget_outlook_side,
    record_failure,
    record_transaction,
    save_event_link,
)
from shared.usecases.dime_to_outlook.pipeline.write import remove, write_event
from shared.usecases.dime_to_outlook.rules_in_force import rules_in_force
from shared.usecases.event_locks import event_locks

__all__ = [  # what other modules import from here (the pipeline's own names live in pipeline/)
    "DIME_TO_OUTLOOK",
    "RULE_PREFIX",
    "Mailboxes",
    "PublicationOutcome",
    "Target",
    "apply_publication",
    "apply_publications",
    "directory_of",
    "forget_mailboxes",
    "mailbox_for",
    "planner_owned",
    "resource_directory",
    "targets_of",
]

log = logging.getLogger(__name__)


# Publications ----------------------------------------------------------------------------------


async def apply_publication(
    message: dict[str, Any], services: Services, *, record_failures: bool = True
) -> PublicationOutcome:
    """The dime-publications worker (a batch of one): transient failures raise (the queue
    redelivers, then poisons); permanent ones become a failed transaction carrying the message."""
    (outcome,) = await apply_publications([message], services, record_failures=record_failures)
    if isinstance(outcome, SyncError):
        raise outcome
    return outcome


async def apply_publications(
    messages: list[dict[str, Any]],
    services: Services,
    *,
    record_failures: bool = True,
    reads: BatchReads | None = None,
) -> list[PublicationOutcome | SyncError]:
    """Publication messages as one batch; per message (in order) its outcome, or the transient
    SyncError that stopped it (the caller raises or counts it). A permanent failure is a
    `PublicationOutcome(skipped="failed", error=...)` and, with `record_failures`, a failed
    transaction carrying the message.

    A LastModifiedDate far in the future is clamped to the time of receipt (`receivedAt`, else
    now); a publication carrying only Dime.Scheduler's internal Id is resolved first (GET
    /appointment/{id}). `authoritative` (the reconcile's messages): Dime.Scheduler's own state,
    which overrides a stale verdict (and its rule deletes are held for the reconcile's breaker)."""
    results: list[PublicationOutcome | SyncError | None] = [None] * len(messages)
    placements: list[tuple[int, Placement]] = []
    pubs: list[Publication] = []
    for number, message in enumerate(messages):
        pub = Publication.from_message(message["publication"])
        received = message.get("receivedAt")
        pub = clamped(pub, datetime.fromisoformat(received) if isinstance(received, str) else services.clock())
        pubs.append(pub)
        deleting = message.get("change") == "deleted"
        try:
            if not deleting and (too_many := assignments_refusal(pub)):
                # Bounded work: refused before any lookup or write; visible and retryable as a whole.
                raise SyncError(ErrorCode.PUBLICATION_INVALID, too_many)
            if not pub.resolved:
                pub = pubs[number] = await resolve_guid(services, pub)
        except SyncError as error:
            results[number] = error
            continue
        authoritative = message.get("authoritative") is True  # the reconcile: its deletes pass its breaker
        placements.append((number, Placement(pub, deleting, authoritative, hold_rule_deletes=authoritative)))
    placed = await place_batch(services, [p for _, p in placements], reads=reads)
    for (number, _), result in zip(placements, placed, strict=True):
        results[number] = result
    final: list[PublicationOutcome | SyncError] = []
    for number, result in enumerate(results):
        assert result is not None
        if isinstance(result, SyncError):
            if result.code.transient:
                guid = pubs[number].guid
                log.warning("transient failure placing appointment %s, the queue will deliver again: %s", guid, result)
            else:
                if record_failures:
                    await record_failure(services, pubs[number].guid, result, messages[number])
                result = PublicationOutcome(skipped="failed", error=result)
        final.append(result)
    return final


# Outlook edits of planner-owned events (called by the Outlook → Dime.Scheduler path) -----------


async def planner_owned(
    services: Services, resource: Resource, event_id: str, event: Event | None, link: Link | None
) -> Decision:
    """An event this app wrote, seen by the Outlook → Dime.Scheduler path: never imported.

    An echo of our own write (same content) costs one link update; a person's edit is reverted
    (DIME_OUTLOOK_EDITS=revert: the planner's version is written back at once) or kept and
    recorded (keep). No Dime.Scheduler call either way."""
    if link is None:
        return Decision(Action.SKIP, "planner-owned")  # our create, notified before its link was saved
    if event is not None and event.change_key is not None and event.change_key == link.change_key:
        return Decision(Action.SKIP, "unchanged")
    async with event_locks.hold(("appointment", link.appointment_guid)):
        return await _planner_owned(services, resource.object_id, event_id, event, link)


async def _planner_owned(services: Services, mailbox: str, event_id: str, event: Event | None, link: Link) -> Decision:
    state, links = await services.astore.eventlinks.read(link.appointment_guid)
    pair = links.get(mailbox)
    if pair is None or pair.event_id != event_id:
        if event is None:
            await forget_outlook_side(services, mailbox, event_id)  # a leftover of an event we replaced
        return Decision(Action.SKIP, "planner-owned")
    if state is None or state.deleted or not state.publication:
        return Decision(Action.SKIP, "planner-owned")  # the publication worker owns what happens next
    pub = Publication.from_message(state.publication)
    if pub.assignments_known and not pub.names_resource(pair.resource):
        return Decision(Action.SKIP, "planner-owned")  # unassigned meanwhile: the worker deletes it
    verdict = (await rules_in_force(services)).evaluate(facts_of(pub, pair.resource))
    if verdict.skipped:
        return Decision(Action.SKIP, "planner-owned")  # a rule keeps it off Outlook: the worker deletes it
    body = body_for(services.settings, pub, pair.resource, verdict if verdict.rule is not None else None)
    keep = services.settings.dime_outlook_edits == "keep"
    target = Target(mailbox, pair.resource, pair.resource_email)
    if event is not None:
        if stored_hash(event) == link.content_hash or same_content(event, body):
            relinked = replace(link, change_key=event.change_key, content_hash=stored_hash(event))
            with contextlib.suppress(ConcurrentUpdate):  # someone recorded a newer version: theirs stands
                await services.astore.save_link(relinked)
            return Decision(Action.RELINK, "echo")
        if keep:
            kept = replace(link, change_key=event.change_key, content_hash=stored_hash(event))
            with contextlib.suppress(ConcurrentUpdate):
                await services.astore.save_link(kept)
            await record_transaction(
                services, mailbox, event_id, link.appointment_guid, "keep", "outlook-edit-kept", shown_of(link)
            )
            return Decision(Action.RELINK, "outlook-edit-kept")
        reverted = Decision(Action.UPSERT, "outlook-edit-reverted")
        await write_event(services, pub, target, pair, body, reverted)
        return reverted
    # Deleted in Outlook. The new state is saved before the old link is forgotten, so a failure in
    # between leaves this notification retryable (the old link still routes it here).
    gone = replace(pair, event_id=None, generation=pair.generation + 1)
    if keep:
        await save_event_link(services, replace(gone, dismissed=True))
        await forget_outlook_side(services, mailbox, event_id)
        await record_transaction(
            services, mailbox, event_id, link.appointment_guid, "keep", "outlook-delete-kept", shown_of(link)
        )
        return Decision(Action.DELETE, "outlook-delete-kept")
    recreated = Decision(Action.UPSERT, "outlook-delete-reverted")
    await write_event(services, pub, target, gone, body, recreated)
    await forget_outlook_side(services, mailbox, event_id)
    return recreated


# Kept for the callers that name the pipeline's steps by their former names here.
_remove = remove
_forget_outlook_side = forget_outlook_side
_transaction = record_transaction
