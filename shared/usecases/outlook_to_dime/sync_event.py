"""Bringing one Outlook event to Dime.Scheduler: read, decide, execute, remember.

Every path that learns of a change (the notification worker, delta, reconcile, retries) ends
here, so the rules live in one place. The order matters: the other side's write first, the link
(the last *synchronised* version) only after it was accepted, so a failure is retried instead of
forgotten. Links are updated etag-conditionally; losing a race means re-reading and deciding again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.core.decision import Action, Decision, decide
from shared.core.events import EventFormatError, event_from_graph, missing_fields, parse_graph_time
from shared.core.ids import appointment_guid
from shared.core.links import DIME_ORIGIN, OUTLOOK_ORIGIN, Link
from shared.core.outlook_to_dime.appointments import (
    MissingDeleteValues,
    appointment_for,
    appointment_id_of,
    delete_call,
    upsert_call,
)
from shared.core.outlook_to_dime.webhook import ChangeNotification
from shared.core.resources import Resource
from shared.core.shown import described, on_board, shown_of
from shared.core.transactions import ErrorCode, Status, SyncError, Transaction, new_transaction_id
from shared.services import Services
from shared.usecases.event_locks import event_locks
from shared.usecases.outlook_to_dime.breaker_alerts import OUTLOOK_TO_DIME, guarded

if TYPE_CHECKING:
    from shared.adapters.storage.syncstate_store import SyncStateStore

log = logging.getLogger(__name__)

MAX_RACES = 3


@dataclass(frozen=True)
class Outcome:
    """What happened to one event: the decision, and the error when executing it failed."""

    decision: Decision
    error: SyncError | None = None


@dataclass(frozen=True)
class AlreadyRead:
    """What a batching caller already read for one event (a packed message reads its events
    together), handed to sync_event so that nothing is read twice."""

    event_json: dict[str, Any] | None = None  # Graph's answer in full ($batch)
    link: Link | None = None  # the link as just read (None: not known, sync_event reads it)
    gone: bool = False  # Graph answered 404
    in_calendar: bool = False  # the primary calendar listed event_json just now (a batched proof)


async def tracked_resource(mailbox_id: str, services: Services) -> Resource:
    """The mailbox's resource, or MailboxNotTracked: a notification never onboards a mailbox
    (onboarding is the admin API's job; the webhook already refused items from subscriptions we
    do not hold, this covers a mailbox removed since)."""
    from shared.usecases.outlook_to_dime.subscriptions import MailboxNotTracked

    resource = await asyncio.to_thread(services.store.get_resource, mailbox_id)
    if resource is None:
        raise MailboxNotTracked(mailbox_id)
    return resource


async def sync_event(
    services: Services,
    resource: Resource,
    event_id: str,
    *,
    known_change_key: str | None = None,
    deleted: bool = False,
    claimed_deleted: bool = False,
    event_json: dict[str, Any] | None = None,
    link_read: Link | None = None,
    prove_membership: bool = False,
    membership_proven: bool = False,
    breaker_passed: bool = False,
    successes: list[Transaction] | None = None,
) -> Decision:
    """Decide and execute for one event. Raises SyncError when Graph or Dime.Scheduler failed.

    known_change_key: the changeKey a notification announced (equal to the link's: no Graph call).
    deleted: known gone (Graph answered 404). claimed_deleted: a `deleted` notification, a claim
    to confirm with Graph (at least once, and forgeable), never a fact. event_json: current state
    already read in full ($batch, /instances); a partial item (delta) is read again. link_read: the
    link as the caller just read it (saves a table read; links are written etag-conditionally).
    prove_membership: an event we do not hold a link for must be listed by the primary calendar
    (notifications cover every calendar; a deleted event may still answer GET). membership_proven:
    the caller saw the primary calendar list event_json just now (a batched proof), so that proof
    is not asked again (a lost race reads the event again, and proves it again). breaker_passed:
    the caller's circuit breaker already allowed this delete (a run's set of deletes).
    successes: the success transaction goes here instead of to the table (the caller batches them).
    """
    async with event_locks.hold((resource.object_id, event_id)):
        race = _Race()
        decision = await _settle(
            services,
            resource,
            event_id,
            race,
            known_change_key=known_change_key,
            deleted=deleted,
            claimed_deleted=claimed_deleted,
            event_json=event_json,
            link_read=link_read,
            prove_membership=prove_membership,
            membership_proven=membership_proven,
            breaker_passed=breaker_passed,
            successes=successes,
        )
        if race.upserted is not None and decision.action is Action.SKIP:  # a delete or rewrite covers ours
            await _remove_orphan(services, race.upserted)
        return decision


async def _settle(
    services: Services,
    resource: Resource,
    event_id: str,
    race: _Race,
    *,
    known_change_key: str | None,
    deleted: bool,
    claimed_deleted: bool,
    event_json: dict[str, Any] | None,
    link_read: Link | None,
    prove_membership: bool,
    membership_proven: bool,
    breaker_passed: bool,
    successes: list[Transaction] | None,
) -> Decision:
    """Read, decide, execute; after a lost race on the link, read and decide again (`race` keeps
    what we had already done to the board, so the fresh decision can repair it)."""
    for _ in range(MAX_RACES):
        if link_read is not None:
            link, link_read = link_read, None
        else:
            link = await asyncio.to_thread(services.store.get_link, resource.object_id, event_id)
        force_upsert = race.must_rewrite(link)
        if deleted:
            current = None
        elif event_json is not None and not missing_fields(event_json):
            current = event_json
        elif (
            link
            and known_change_key
            and link.change_key == known_change_key
            and not force_upsert
            and not claimed_deleted
            and not link.unproven
        ):
            return Decision(Action.SKIP, "unchanged")
        elif claimed_deleted and link is None and not await _series_links(services, resource, event_id):
            return Decision(Action.SKIP, "deleted-never-synced")  # nothing of ours to delete: no Graph call
        else:
            current = await services.graph.get_event(resource.object_id, event_id)
        if current is not None and _answered_another_id(resource, event_id, current):
            return Decision(Action.SKIP, "id-mismatch")
        if current is not None and current.get("type") == "seriesMaster":
            from shared.usecases.outlook_to_dime.series import sync_series

            return await sync_series(services, resource, current, prove_membership=prove_membership)
        if current is None and link is None:
            series = await _series_links(services, resource, event_id)
            if series:  # a deleted series master: its instances go, through the breaker
                from shared.usecases.outlook_to_dime.series import delete_instances

                return await delete_instances(services, resource, event_id, series)
        proof = await _needs_proof(services, resource, event_id, link, claimed_deleted, prove_membership)
        proof = proof if current is not None else None
        proven = membership_proven and current is event_json
        if proof and not proven and not await in_primary_calendar(services, resource.object_id, current or {}):
            if link is None:
                return Decision(Action.SKIP, "not-in-calendar")
            current = None  # a deleted event that still answers GET, or moved to another calendar
        try:
            decision = await _execute(
                services, resource, event_id, current, link, force_upsert, breaker_passed, successes
            )
            if proof in ("new", "tombstone") and decision.action is Action.UPSERT:  # (back) in the calendar
                await asyncio.to_thread(state_store(services).remove_tombstone, resource.object_id, event_id)
            if proof == "unproven" and link is not None and decision.action is Action.SKIP:
                await _proven(services, link)
            return decision
        except _LostRace as lost:
            # Another instance changed the link meanwhile: our read may be stale; read again.
            race.upserted = lost.upserted or race.upserted
            race.deleted = race.deleted or lost.deleted
            if lost.upserted is not None:
                await _hold_unlinked(services, lost.upserted)
            event_json = None
    raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"event {event_id} kept changing under us; retrying later")


def _answered_another_id(resource: Resource, event_id: str, current: dict[str, Any]) -> bool:
    """Whether Graph (GET or $batch) answered an event whose `id` is not the one asked for.

    Links, the appointment GUID, locks and tombstones are all keyed on the id; writing them under the
    id we asked for (from a notification, forgeable in its casing) while Graph names the event
    differently would give one event two keys, and the second key a duplicate appointment. So the
    answer is refused with a logged reason rather than followed: following it would mean re-keying
    mid-flight (another event lock, link and tombstone lookup taken while holding this one).
    Nothing is lost: delta and the reconcile list the event under the id Graph returns and
    synchronise it there. (A missing id is left to the parser, which reports EVENT_UNREADABLE.)"""
    returned = current.get("id")
    if not isinstance(returned, str) or not returned or returned == event_id:
        return False
    log.warning(
        "skipped event %r of mailbox %s: Graph answered it as id %r (id-mismatch; delta keys it on Graph's id)",
        event_id[:200],
        resource.object_id,
        returned[:200],
    )
    return True


async def _series_links(services: Services, resource: Resource, master_id: str) -> list[Link]:
    return await asyncio.to_thread(services.store.links_of_series, resource.object_id, master_id)


async def _needs_proof(
    services: Services,
    resource: Resource,
    event_id: str,
    link: Link | None,
    claimed_deleted: bool,
    prove_membership: bool,
) -> str | None:
    """Why a 200 from Graph is not enough (None when it is): a claimed delete, an event new to us
    from a notification, or one we deleted before (a tombstone: a late `updated` must not revive it)."""
    if claimed_deleted:
        return "claimed-deleted"
    if link is not None:
        return "unproven" if link.unproven else None
    if prove_membership:
        return "new"
    tombstoned = await asyncio.to_thread(state_store(services).is_tombstoned, resource.object_id, event_id)
    return "tombstone" if tombstoned else None


async def in_primary_calendar(services: Services, mailbox_id: str, event_json: dict[str, Any]) -> bool:
    """Whether the primary calendar lists the event over its own time range: the proof a GET
    200 cannot give (`MailboxRun.prove_listed` asks it for many events at once)."""
    where = proof_range(event_json)
    if where is None:
        return False
    return await services.graph.in_primary_calendar(mailbox_id, str(event_json.get("id") or ""), *where)


def proof_range(event_json: dict[str, Any]) -> tuple[str, str] | None:
    """The calendarView range (ISO start, end) that must list the event: its own times, a day
    either side, so all-day events and zones cannot make it miss; None without readable times."""
    from shared.core.outlook_to_dime.delta import format_graph_time

    try:
        all_day = bool(event_json.get("isAllDay"))
        start = parse_graph_time(event_json.get("start"), all_day=all_day) - timedelta(days=1)
        end = parse_graph_time(event_json.get("end"), all_day=all_day) + timedelta(days=1)
    except EventFormatError:
        return None
    return format_graph_time(start), format_graph_time(end)


def state_store(services: Services) -> SyncStateStore:
    """The syncstate table (delta position, runs, leases, tombstones), built on first use."""
    from shared.adapters.storage.syncstate_store import SyncStateStore

    return SyncStateStore(services.store)


class _LostRace(Exception):
    def __init__(self, upserted: Link | None, deleted: bool) -> None:
        super().__init__("the link changed under us")
        self.upserted = upserted  # the link of what we had already written to Dime.Scheduler, if anything
        self.deleted = deleted  # we had already deleted the appointment


@dataclass
class _Race:
    """What this call did to the board before it lost the link to another instance (the per-event
    lock holds within one process only; across instances the etag-conditional link decides)."""

    upserted: Link | None = None
    deleted: bool = False

    def must_rewrite(self, link: Link | None) -> bool:
        """Rewrite the fresh state unless the winner recorded exactly what we wrote (then the board
        is right), or, after our delete, when the winner kept a link (its appointment is gone)."""
        if self.upserted is not None and (link is None or link.content_hash != self.upserted.content_hash):
            return True
        return self.deleted and link is not None


async def _hold_unlinked(services: Services, written: Link) -> None:
    """We wrote an appointment and lost the link to another instance: before anything that can fail
    on Graph or Dime.Scheduler, make that write durable where every later delivery looks first.

    When the winner removed the link (it deleted the appointment: the event was deleted, became
    private, left the consent), our write has resurrected the appointment and only this process's
    memory knew it. The link is written again, marked unproven: the fresh decision (now, or a
    redelivery after a transient failure, even with the same changeKey) trusts no GET 200 but
    proves the event is in the primary calendar, and deletes the appointment otherwise. When the
    winner kept a link, its link stands (the create fails) and `_Race.must_rewrite` compares."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    held = replace(written, etag=None, unproven=True)
    try:
        await asyncio.to_thread(services.store.save_link, held)
        log.info(
            "event %s of %s: our write lost its link; held it as unproven", written.event_id[-12:], written.mailbox_id
        )
    except ConcurrentUpdate:
        pass  # a link exists: the winner's, which the fresh decision starts from


async def _proven(services: Services, link: Link) -> None:
    """The primary calendar lists an unproven link's event: it is an ordinary link again."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    with contextlib.suppress(ConcurrentUpdate):  # rewritten meanwhile: whoever wrote it decided afresh
        await asyncio.to_thread(services.store.save_link, replace(link, unproven=False))


async def _remove_orphan(services: Services, written: Link) -> None:
    """We wrote an appointment, lost the link to another instance, and the fresh decision keeps no
    appointment (the winner deleted the event, or it left the calendar or the consent): unless a
    link exists now, delete what we wrote, or it would stay on the board with nothing pointing at it."""
    link = await asyncio.to_thread(services.store.get_link, written.mailbox_id, written.event_id)
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
    await asyncio.to_thread(services.dime.run_import, [call])
    log.info(
        "event %s of %s: deleted the appointment our lost race left unlinked",
        written.event_id[-12:],
        written.mailbox_id,
    )
    now = services.clock()
    transaction = Transaction(
        id=new_transaction_id(now),
        mailbox_id=written.mailbox_id,
        direction=OUTLOOK_TO_DIME,
        operation=Action.DELETE.value,
        status=Status.SUCCEEDED,
        created_at=now.isoformat(),
        event_id=written.event_id,
        appointment_guid=written.appointment_guid,
        reason="unlinked-after-race",
        subject=written.subject,
        start=written.start,
    )
    await asyncio.to_thread(services.store.add_transaction, transaction)


async def _execute(
    services: Services,
    resource: Resource,
    event_id: str,
    current: dict[str, Any] | None,
    link: Link | None,
    force_upsert: bool,
    breaker_passed: bool,
    successes: list[Transaction] | None = None,
) -> Decision:
    from shared.adapters.storage.tables import ConcurrentUpdate

    settings, store = services.settings, services.store
    now = services.clock()
    try:
        event = event_from_graph(current) if current is not None else None
    except EventFormatError as error:
        raise SyncError(ErrorCode.EVENT_UNREADABLE, str(error)) from None
    if (link is not None and link.origin == DIME_ORIGIN) or (event is not None and event.planner_tag):
        # An event this app wrote for a planner appointment: never imported (no loop), an echo
        # costs no write, a person's edit follows DIME_OUTLOOK_EDITS.
        from shared.usecases.dime_to_outlook.place_appointment import planner_owned

        decision = await planner_owned(services, resource, event_id, event, link)
        log.info("event %s of %s: %s (%s)", event_id[-12:], resource.object_id, decision.action.value, decision.reason)
        return decision
    guid = link.appointment_guid if link else appointment_guid(settings.graph_tenant_id, resource.object_id, event_id)
    appointment = (
        appointment_for(
            event, guid, resource.email, private_details=settings.sync_private_details, zone=settings.dime_zone
        )
        if event
        else None
    )
    content_hash = appointment.content_hash() if appointment else None
    window = (now - timedelta(days=settings.sync_days_back), now + timedelta(days=settings.sync_days_forward))
    decision = decide(event, link, resource.consent, window, content_hash)
    if force_upsert and decision.action in (Action.SKIP, Action.RELINK) and appointment is not None and link:
        decision = Decision(Action.UPSERT, "rewrite-after-race")
    gone = decision.action is Action.DELETE and decision.reason == "event-deleted"
    if gone and not breaker_passed:
        assert link is not None
        recent = await asyncio.to_thread(state_store(services).recent_webhook_deletes, resource.object_id, now)
        verdict, _ = await guarded(
            services, resource.object_id, "notifications", [link], recent=len(recent), record=False
        )
        if not verdict.allowed:  # becomes a failed transaction carrying the notification (retryable)
            raise SyncError(ErrorCode.CIRCUIT_BREAKER_TRIPPED, f"circuit breaker (notifications): {verdict.message}")
    log.info("event %s of %s: %s (%s)", event_id[-12:], resource.object_id, decision.action.value, decision.reason)

    fresh: Link | None = None
    # What the console shows of this change: the board's (masked) subject, else what the link recorded.
    shown = on_board(appointment) if decision.action is Action.UPSERT else shown_of(link)
    try:
        if decision.action is Action.UPSERT:
            assert appointment is not None and event is not None
            if link is None:
                # Before Dime.Scheduler may publish it: this appointment is never written back.
                await asyncio.to_thread(_mark_outlook_origin, services, guid)
            known_id = link.appointment_id if link else None
            answer = await asyncio.to_thread(services.dime.run_import, [upsert_call(appointment, known_id)])
            fresh = Link(
                mailbox_id=resource.object_id,
                event_id=event_id,
                appointment_guid=guid,
                origin=link.origin if link else OUTLOOK_ORIGIN,
                change_key=event.change_key,
                content_hash=content_hash,
                resource_email=resource.email,
                synced_at=now.isoformat(),
                etag=link.etag if link else None,
                series_master_id=event.series_master_id,
                appointment_id=appointment_id_of(answer or {}, guid) or known_id,
                kept_values=appointment.kept_values(),
                subject=shown.subject,
                start=shown.start,
            )
            await asyncio.to_thread(store.save_link, fresh)
        elif decision.action is Action.DELETE:
            assert link is not None
            try:
                call = delete_call(link.appointment_guid, link.resource_email, link.kept_values, link.appointment_id)
            except MissingDeleteValues as error:
                message = f"cannot delete appointment {link.appointment_guid}: {error}"
                raise SyncError(ErrorCode.DIME_REJECTED, message) from None
            await asyncio.to_thread(services.dime.run_import, [call])
            await asyncio.to_thread(store.delete_link, link)
            if gone:
                await asyncio.to_thread(state_store(services).add_tombstone, resource.object_id, event_id, now)
                if not breaker_passed:
                    await asyncio.to_thread(state_store(services).note_webhook_delete, resource.object_id, now)
        elif decision.action is Action.RELINK:
            assert link is not None and event is not None
            relinked = replace(
                link,
                unproven=False,
                change_key=event.change_key,
                synced_at=now.isoformat(),
                series_master_id=event.series_master_id,
                kept_values=link.kept_values or (appointment.kept_values() if appointment else None),
            )
            await asyncio.to_thread(store.save_link, relinked)
            return decision
        else:
            return decision
    except ConcurrentUpdate:
        raise _LostRace(fresh, deleted=decision.action is Action.DELETE) from None

    transaction = described(
        Transaction(
            id=new_transaction_id(now),
            mailbox_id=resource.object_id,
            direction=OUTLOOK_TO_DIME,
            operation=decision.action.value,
            status=Status.SUCCEEDED,
            created_at=now.isoformat(),
            event_id=event_id,
            appointment_guid=guid,
            reason=decision.reason,
        ),
        shown,
        resource,
    )
    if successes is not None:
        successes.append(transaction)  # the caller writes them in one table batch
    else:
        await asyncio.to_thread(store.add_transaction, transaction)
    return decision


async def apply_notification(
    message: dict[str, Any],
    services: Services,
    *,
    record_failures: bool = True,
    resources: dict[str, asyncio.Future[Resource]] | None = None,
    successes: list[Transaction] | None = None,
    read: AlreadyRead | None = None,
) -> Outcome:
    """The notification worker: transient failures raise (the queue redelivers, then poisons);
    permanent ones become a failed transaction an administrator can see and retry.

    record_failures=False: the retry of an existing failed transaction, which updates that row
    itself (the permanent error comes back in the Outcome), so no second failed row is written.
    resources: the changes of one packed message share one resource read per mailbox;
    successes: and write their success transactions in one table batch; read: what the packed
    message already read of this event."""
    from shared.usecases.outlook_to_dime.subscriptions import MailboxNotTracked

    change = ChangeNotification.from_message(message)
    try:
        if resources is None:
            resource = await tracked_resource(change.mailbox_id, services)
        else:
            if change.mailbox_id not in resources:
                resources[change.mailbox_id] = asyncio.ensure_future(tracked_resource(change.mailbox_id, services))
            resource = await resources[change.mailbox_id]
        read = read or AlreadyRead()
        decision = await sync_event(
            services,
            resource,
            change.event_id,
            known_change_key=change.change_key,
            deleted=read.gone,
            claimed_deleted=change.change_type == "deleted",
            event_json=read.event_json,
            link_read=read.link,
            prove_membership=True,
            membership_proven=read.in_calendar,
            successes=successes,
        )
        return Outcome(decision)
    except MailboxNotTracked:
        log.info("dropped a notification for mailbox %s, which is not onboarded", change.mailbox_id)
        return Outcome(Decision(Action.SKIP, "mailbox-not-tracked"))
    except SyncError as error:
        if error.code.transient:
            log.warning("transient failure, the queue will deliver again: %s", error)
            raise
        if not record_failures:
            return Outcome(Decision(Action.SKIP, "failed"), error)
        await asyncio.to_thread(record_failure, services, change, error, message)
        return Outcome(Decision(Action.SKIP, "failed"), error)


def _mark_outlook_origin(services: Services, guid: str) -> None:
    from shared.adapters.storage.event_links_store import EventLinkStore

    EventLinkStore(services.store).mark_outlook_origin(guid)


def record_failure(services: Services, change: ChangeNotification, error: SyncError, payload: dict[str, Any]) -> None:
    now = services.clock()
    services.store.add_transaction(
        Transaction(
            id=new_transaction_id(now),
            mailbox_id=change.mailbox_id,
            direction=OUTLOOK_TO_DIME,
            operation="delete" if change.change_type == "deleted" else "upsert",
            status=Status.FAILED,
            created_at=now.isoformat(),
            event_id=change.event_id,
            appointment_guid=appointment_guid(services.settings.graph_tenant_id, change.mailbox_id, change.event_id),
            error_code=error.code.value,
            message=error.message,
            payload={"queue": "graph-notifications", "message": payload},
        )
    )
    log.error("failed permanently (%s): %s", error.code.value, error.message)
