"""Write: the Graph writes of the Dime.Scheduler → Outlook pipeline, and the order around them.

Order matters: Graph's write first, the rows only after Graph accepted it, so a failure is retried
instead of forgotten, and a retried create carries the same transactionId (Graph drops it). A
create is announced in its row before it is sent (`EventLink.pending`), so a create whose row
never names it (a crash, a lost race) is found by its tag and undone by the next delivery
(`settle_intents`). Rows and transactions are written by `remember.py`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

from shared.adapters.storage.tables import ConcurrentUpdate
from shared.core.api_format import iso_utc
from shared.core.decision import Action, Decision
from shared.core.dime_to_outlook.links import EventLink
from shared.core.dime_to_outlook.outlook_event import desired_hash, same_content, transaction_id
from shared.core.dime_to_outlook.publication import Publication
from shared.core.dime_to_outlook.tag import tag_value
from shared.core.events import EventFormatError, event_from_graph
from shared.core.shown import Shown, in_calendar
from shared.core.transactions import ErrorCode, SyncError
from shared.services import Services
from shared.usecases.dime_to_outlook.pipeline.decide import RULE_PREFIX, Step, Target
from shared.usecases.dime_to_outlook.pipeline.read import in_primary_calendar
from shared.usecases.dime_to_outlook.pipeline.remember import (
    forget_outlook_side,
    record_transaction,
    remember_outlook_side,
    save_event_link,
)

log = logging.getLogger(__name__)


async def execute(services: Services, pub: Publication, step: Step) -> None:
    log.info("appointment %s in %s: %s (%s)", pub.guid, step.mailbox, step.decision.action.value, step.decision.reason)
    if step.decision.action is Action.UPSERT:
        assert step.target is not None and step.body is not None
        rule = step.verdict.rule if step.verdict else None
        await write_event(services, pub, step.target, step.link, step.body, step.decision, rule=rule)
    elif step.decision.action is Action.DELETE:
        assert step.link is not None
        await remove(services, step.link, step.decision.reason)


async def write_event(
    services: Services,
    pub: Publication,
    target: Target,
    link: EventLink | None,
    body: dict[str, Any],
    decision: Decision,
    *,
    rule: str | None = None,
) -> EventLink:
    """PATCH the linked event, or create one (a PATCH that finds it gone creates a new one).

    A PATCH that succeeds proves nothing: an event the person deleted keeps its immutable id in
    Deleted Items, where a PATCH may still succeed (issue 18 point 9). So the primary calendar must
    list the patched event, or it is treated as gone and created again.

    A create first records its intent in the pair's row (`EventLink.pending`, etag-conditional:
    another instance that wrote the pair meanwhile makes this one deliver again before anything is
    created), then POSTs, then names the event in the row. If that last save loses to another
    instance, the create is undone at once; if the undo fails, the intent is written again, and
    every later delivery of this appointment, stale or not, finds the event by its tag."""
    guid, mailbox = pub.guid, target.mailbox_id
    generation = link.generation if link else 0
    shown = in_calendar(body, pub.start)  # the subject as placed (after the rules' look)
    answer = None
    operation = "update"
    if link is not None and link.event_id is not None:
        answer = await services.graph.update_event(mailbox, link.event_id, body)
        if answer is not None and not await in_primary_calendar(services, mailbox, answer):
            log.info("appointment %s in %s: the patched event is not in the calendar; creating it again", guid, mailbox)
            answer = None
        if answer is None:
            generation += 1  # deleted in Outlook meanwhile: its transactionId is spent
    intent: EventLink | None = None
    if answer is None:
        operation = "create"
        if link is not None and link.event_id is None and link.pending is not None:
            generation = max(generation, link.pending)  # the same transactionId: Graph hands back that create
        intent = await save_event_link(
            services,
            EventLink(
                appointment_guid=guid,
                mailbox_id=mailbox,
                resource=target.resource,
                resource_email=target.email,
                event_id=None,
                generation=generation,
                sent_hash=None,
                start=pub.start,
                synced_at=services.clock().isoformat(),
                etag=link.etag if link else None,
                pending=generation,
                subject=shown.subject,
            ),
        )
        create = {**body, "transactionId": transaction_id(guid, mailbox, generation)}
        try:
            answer = await services.graph.create_event(mailbox, create)
        except SyncError as error:
            # How Graph answers a duplicate transactionId is unverified (201 with the event, or an
            # error), and a timeout may hide a create that happened: find our event by its tag.
            if error.code not in (ErrorCode.GRAPH_UNAVAILABLE, ErrorCode.GRAPH_REJECTED):
                raise
            answer = await services.graph.find_tagged_event(mailbox, tag_value(guid, target.resource))
            if answer is None:
                raise
        if not _shows(answer, body):
            # An earlier create of ours came back (same transactionId) with older content.
            answer = await services.graph.update_event(mailbox, answer["id"], body) or answer
    now = services.clock().isoformat()
    fresh = EventLink(
        appointment_guid=guid,
        mailbox_id=mailbox,
        resource=target.resource,
        resource_email=target.email,
        event_id=answer["id"],
        generation=generation,
        sent_hash=desired_hash(body),
        start=pub.start,
        synced_at=now,
        etag=intent.etag if intent else (link.etag if link else None),
        subject=shown.subject,
    )
    if intent is None:
        saved = await save_event_link(services, fresh)
    else:
        saved = await _save_created(services, fresh, answer)
    await remember_outlook_side(services, mailbox, answer, guid, target.email, shown)
    reason = decision.reason if rule is None else f"{decision.reason} ({RULE_PREFIX}{rule})"
    await record_transaction(services, mailbox, answer["id"], guid, operation, reason, shown)
    return saved


async def _save_created(services: Services, fresh: EventLink, answer: dict[str, Any]) -> EventLink:
    """Name the created event in the pair's row (conditional on our intent). Losing it to another
    instance undoes the create at once, unless the winner named the same event (its create carried
    the same transactionId) or adopted our intent (its create will); a failed undo writes the intent
    again, so the next delivery of this appointment (even a stale one) deletes the event."""
    store = services.astore.eventlinks
    try:
        return await store.save_link(fresh)
    except ConcurrentUpdate:
        pass
    _, links = await store.read(fresh.appointment_guid)
    now = links.get(fresh.mailbox_id)
    if now is not None and (now.event_id == answer["id"] or (now.event_id is None and now.pending == fresh.generation)):
        raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of {fresh.appointment_guid} changed under us")
    try:
        await services.graph.delete_event(fresh.mailbox_id, answer["id"])
    except SyncError:
        if now is not None and now.pending is None:
            with contextlib.suppress(ConcurrentUpdate):  # else: rewritten again; the reconcile's sweep remains
                await store.save_link(replace(now, pending=fresh.generation))
        raise
    log.info("appointment %s in %s: undid our create, which lost its link", fresh.appointment_guid, fresh.mailbox_id)
    await record_transaction(
        services, fresh.mailbox_id, answer["id"], fresh.appointment_guid, "delete", "lost-create-undone"
    )
    raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of {fresh.appointment_guid} changed under us")


async def settle_intents(services: Services, links: dict[str, EventLink], wanted: set[str]) -> dict[str, EventLink]:
    """Settle the intents (`pending`) that creates left in this appointment's rows.

    A mailbox that should get an event and has none keeps its intent: `write_event` creates with the
    same transactionId, so Graph hands back that create's event instead of a second one. Anywhere
    else, every event with this pair's tag that the row does not name is deleted (found by the tag,
    so whether the create happened does not matter), then the intent is cleared and the generation
    moved past it. A create still in flight elsewhere then loses its row and undoes itself."""
    if not any(link.pending is not None for link in links.values()):
        return links
    settled = dict(links)
    for mailbox, link in links.items():
        if link.pending is None or (mailbox in wanted and link.event_id is None):
            continue
        found = await services.graph.find_tagged_events(mailbox, tag_value(link.appointment_guid, link.resource))
        for event in found:
            if event["id"] == link.event_id:
                continue
            await services.graph.delete_event(mailbox, event["id"])
            await forget_outlook_side(services, mailbox, event["id"])
            await record_transaction(
                services, mailbox, event["id"], link.appointment_guid, "delete", "lost-create-undone"
            )
            log.info("appointment %s in %s: deleted an event a lost create left", link.appointment_guid, mailbox)
        cleared = replace(
            link,
            pending=None,
            generation=max(link.generation, link.pending + 1),
            synced_at=services.clock().isoformat(),
        )
        settled[mailbox] = await save_event_link(services, cleared)
    return settled


def _shows(answer: dict[str, Any], body: dict[str, Any]) -> bool:
    try:
        return same_content(event_from_graph(answer), body)
    except EventFormatError:
        return False


async def remove(services: Services, link: EventLink, reason: str) -> None:
    """Delete the pair's event (if any), then the row forgets it (a new generation), then the other
    direction's link, then the transaction."""
    assert link.event_id is not None or link.dismissed
    if link.event_id is not None:
        await services.graph.delete_event(link.mailbox_id, link.event_id)
    gone = replace(link, event_id=None, generation=link.generation + 1, sent_hash=None, dismissed=False)
    await save_event_link(services, replace(gone, synced_at=services.clock().isoformat()))
    if link.event_id is not None:
        await forget_outlook_side(services, link.mailbox_id, link.event_id)
        shown = Shown(link.subject, iso_utc(link.start))
        await record_transaction(
            services, link.mailbox_id, link.event_id, link.appointment_guid, "delete", reason, shown
        )
