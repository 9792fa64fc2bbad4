"""Triage of one Outlook change: what must still be read, then what happens. Pure, no I/O.

Every way a change reaches the board (a notification, a packed message, a delta or reconcile
page, a series expansion, a retry) is a `Change`; the pipeline (shared/usecases/outlook_to_dime/
pipeline/) keeps what it has read of it in `Known`, asks `needed` what to read next (for all the
events of a batch at once), and once nothing is needed asks `verdict` what happens. The rules that
used to be written in several places exist here once:

- "the announced changeKey equals the link's: nothing changed" (`unchanged`), never for a claimed
  delete nor an unproven link, nor after a lost race whose write must be repeated;
- a series master is expanded, a deleted one deletes its instances, an answer under another id is
  refused (`id-mismatch`), an incomplete item is read again in full;
- an event this app wrote for a planner appointment is never imported (`planner-owned`);
- a 200 from Graph is not proof that an event is in the primary calendar when the change claims a
  delete, when a notification names an event new to us, when we deleted it before (tombstone),
  or when the link is unproven (a race left it) — then the primary calendar must list it;
- the sync window, the link and the transaction written for a decision.

The final decision for an ordinary event is `shared.core.decision.decide`, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.core.decision import Action, Decision, decide
from shared.core.events import Event, EventFormatError, event_from_graph, missing_fields
from shared.core.ids import appointment_guid
from shared.core.links import DIME_ORIGIN, OUTLOOK_ORIGIN, Link
from shared.core.outlook_to_dime.appointments import (
    Appointment,
    MissingDeleteValues,
    appointment_for,
    delete_call,
    upsert_call,
)
from shared.core.resources import Resource
from shared.core.shown import Shown, described, on_board, shown_of
from shared.core.transactions import ErrorCode, Status, SyncError, Transaction, new_transaction_id

OUTLOOK_TO_DIME = "outlook-to-dime"


@dataclass(frozen=True)
class Change:
    """One event that may have changed, as its entry knows it.

    change_key: the changeKey a notification announced (equal to the link's: no Graph call).
    claimed_deleted: a `deleted` notification — a claim (at least once, forgeable), never a fact.
    prove_new: a notification (they cover every calendar): an event new to us must be listed by
    the primary calendar. gone: known gone (a run's guarded delete, a 404 the entry read).
    breaker_passed: the entry's breaker already allowed this delete as part of a set.
    event_json: the event as already read in full ($batch, /instances); a partial one (delta) is
    read again. link/link_known: the link as the entry just read it. listed: the entry saw the
    primary calendar list event_json just now. message: the queue message a failure carries.
    """

    mailbox_id: str
    event_id: str
    change_key: str | None = None
    claimed_deleted: bool = False
    prove_new: bool = False
    gone: bool = False
    breaker_passed: bool = False
    event_json: dict[str, Any] | None = None
    link: Link | None = None
    link_known: bool = False
    listed: bool = False
    message: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.mailbox_id, self.event_id)


class Need(StrEnum):
    """What the pipeline must read before `verdict` can answer (read for the whole batch at once)."""

    LINK = "link"  # the link row
    SERIES_LINKS = "series-links"  # the links of instances of this id as a series master
    EVENT = "event"  # the event itself (GET / $batch member)
    TOMBSTONE = "tombstone"  # whether we deleted this event's appointment before
    PROOF = "proof"  # whether the primary calendar lists the event (calendarView)


@dataclass
class Known:
    """What has been read of one change so far (None: not read)."""

    link: Link | None = None
    link_read: bool = False
    event: dict[str, Any] | None = None
    event_read: bool = False  # True with event None: Graph answered 404
    series_links: list[Link] | None = None
    tombstoned: bool | None = None
    listed: bool | None = None
    # A lost race (another instance changed the link under our write): what we had done, so the
    # fresh decision can repair it (`Race.must_rewrite`).
    race: Race = field(default_factory=lambda: Race())


@dataclass
class Race:
    """What this change did to the board before it lost its link to another instance (the per-event
    lock holds within one process only; across instances the etag-conditional link decides)."""

    upserted: Link | None = None
    deleted: bool = False
    rounds: int = 0

    def must_rewrite(self, link: Link | None) -> bool:
        """Rewrite the fresh state unless the winner recorded exactly what we wrote (then the board
        is right), or, after our delete, when the winner kept a link (its appointment is gone)."""
        if self.upserted is not None and (link is None or link.content_hash != self.upserted.content_hash):
            return True
        return self.deleted and link is not None


def known_from(change: Change) -> Known:
    """What the entry already read: a complete event, a 404, the link, a proof."""
    known = Known()
    if change.link_known or change.link is not None:
        known.link, known.link_read = change.link, True
    if change.gone:
        known.event, known.event_read = None, True
    elif change.event_json is not None and not missing_fields(change.event_json):
        known.event, known.event_read = change.event_json, True
        if change.listed:
            known.listed = True
    return known


def unchanged(link: Link | None, change_key: str | None) -> bool:
    """The rule written once: a changeKey equal to the link's means nothing changed since the last
    synchronised version (an unproven link must be proven first, so it never counts)."""
    return link is not None and bool(change_key) and link.change_key == change_key and not link.unproven


def _proof(change: Change, known: Known) -> str | None:
    """Why a 200 from Graph is not enough (None when it is)."""
    if change.claimed_deleted:
        return "claimed-deleted"
    if known.link is not None:
        return "unproven" if known.link.unproven else None
    if change.prove_new:
        return "new"
    return "tombstone" if known.tombstoned else None


def needed(change: Change, known: Known) -> Need | None:
    """The next thing to read for this change, or None when `verdict` can answer."""
    if not known.link_read:
        return Need.LINK
    if not known.event_read:
        rewrite = known.race.must_rewrite(known.link)
        if not rewrite and not change.claimed_deleted and unchanged(known.link, change.change_key):
            return None  # unchanged: no Graph call
        if change.claimed_deleted and known.link is None:
            if known.series_links is None:
                return Need.SERIES_LINKS
            if not known.series_links:
                return None  # nothing of ours to delete: no Graph call
        return Need.EVENT
    current = known.event
    if current is not None and (_other_id(change, current) or current.get("type") == "seriesMaster"):
        return None
    if current is None:
        if known.link is None and known.series_links is None:
            return Need.SERIES_LINKS
        return None
    if known.link is None and not change.claimed_deleted and not change.prove_new and known.tombstoned is None:
        return Need.TOMBSTONE
    if _proof(change, known) and known.listed is None:
        return Need.PROOF
    return None


def _other_id(change: Change, current: dict[str, Any]) -> str | None:
    """The id Graph answered when it is not the one asked for (links, GUIDs, locks and tombstones
    are keyed on the id: following it would give one event two keys). None when it is the same."""
    returned = current.get("id")
    if not isinstance(returned, str) or not returned or returned == change.event_id:
        return None
    return returned


@dataclass(frozen=True)
class Policy:
    """What of the settings the triage needs (pure values)."""

    tenant_id: str
    private_details: bool
    zone: Any  # tzinfo of the board
    days_back: int
    days_forward: int

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The sync window around now."""
        return (now - timedelta(days=self.days_back), now + timedelta(days=self.days_forward))


class Step(StrEnum):
    """What the pipeline does with a verdict."""

    DONE = "done"  # nothing to write: the decision says why
    WRITE = "write"  # an import call (upsert or delete) and the link, or a relink
    SERIES = "series"  # a series master: its instances are synchronised (a batch of their own)
    SERIES_GONE = "series-gone"  # a deleted series master: its linked instances go, through the breaker
    PLANNER = "planner"  # an event this app wrote for a planner appointment: `planner_owned` decides
    FAIL = "fail"  # the event cannot be synchronised (a permanent error)


@dataclass(frozen=True)
class Verdict:
    """The outcome of the triage for one change: what happens, and what to write for it."""

    step: Step
    decision: Decision
    guid: str | None = None
    link: Link | None = None  # the link the decision started from
    fresh: Link | None = None  # the link to save after the write (upsert, relink, proven)
    call: dict[str, object] | None = None  # the /import call (upsert or delete)
    event: Event | None = None
    gone: bool = False  # a delete because the event is gone: tombstone, and the breaker unless passed
    clear_tombstone: bool = False  # an upsert of an event we may have deleted before (proven back in the calendar)
    shown: Shown = field(default_factory=Shown)
    error: SyncError | None = None
    master: dict[str, Any] | None = None  # Step.SERIES
    series_links: list[Link] = field(default_factory=list)  # Step.SERIES_GONE

    @property
    def breaker_needed(self) -> bool:
        return self.gone and self.decision.action is Action.DELETE


def verdict(change: Change, known: Known, resource: Resource, policy: Policy, now: datetime) -> Verdict:
    """What happens to this change, once `needed` asks nothing more."""
    link = known.link
    rewrite = known.race.must_rewrite(link)
    if not known.event_read:
        if change.claimed_deleted and link is None:
            return Verdict(Step.DONE, Decision(Action.SKIP, "deleted-never-synced"))
        return Verdict(Step.DONE, Decision(Action.SKIP, "unchanged"), link=link)
    current = known.event
    if current is not None and _other_id(change, current):
        return Verdict(Step.DONE, Decision(Action.SKIP, "id-mismatch"))
    if current is not None and current.get("type") == "seriesMaster":
        return Verdict(Step.SERIES, Decision(Action.SKIP, "series-master"), master=current)
    if current is None and link is None:
        if known.series_links:
            return Verdict(Step.SERIES_GONE, Decision(Action.SKIP, "series-master"), series_links=known.series_links)
        return Verdict(Step.DONE, Decision(Action.SKIP, "deleted-never-synced"))
    proof = _proof(change, known) if current is not None else None
    if proof and not known.listed:
        if link is None:
            return Verdict(Step.DONE, Decision(Action.SKIP, "not-in-calendar"))
        current = None  # a deleted event that still answers GET, or moved to another calendar
    # A tombstone read as absent needs no delete (a round trip per new event); unread: delete it.
    clear = proof in ("new", "tombstone") and known.tombstoned is not False
    return _decided(change, current, link, resource, policy, now, rewrite, proof, clear)


def _decided(
    change: Change,
    current: dict[str, Any] | None,
    link: Link | None,
    resource: Resource,
    policy: Policy,
    now: datetime,
    rewrite: bool,
    proof: str | None,
    clear_tombstone: bool,
) -> Verdict:
    try:
        event = event_from_graph(current) if current is not None else None
    except EventFormatError as error:
        return Verdict(Step.FAIL, Decision(Action.UPSERT, "unreadable"), link=link, error=_error(error))
    if (link is not None and link.origin == DIME_ORIGIN) or (event is not None and event.planner_tag):
        return Verdict(Step.PLANNER, Decision(Action.SKIP, "planner-owned"), link=link, event=event)
    guid = link.appointment_guid if link else appointment_guid(policy.tenant_id, resource.object_id, change.event_id)
    appointment = (
        appointment_for(event, guid, resource.email, private_details=policy.private_details, zone=policy.zone)
        if event
        else None
    )
    content_hash = appointment.content_hash() if appointment else None
    decision = decide(event, link, resource.consent, policy.window(now), content_hash)
    if rewrite and decision.action in (Action.SKIP, Action.RELINK) and appointment is not None and link:
        decision = Decision(Action.UPSERT, "rewrite-after-race")
    gone = decision.action is Action.DELETE and decision.reason == "event-deleted"
    if decision.action is Action.UPSERT:
        assert appointment is not None and event is not None
        fresh = upserted_link(resource, change.event_id, guid, event, appointment, link, now, content_hash)
        call = upsert_call(appointment, link.appointment_id if link else None)
        return Verdict(
            Step.WRITE,
            decision,
            guid,
            link,
            fresh,
            call,
            event,
            clear_tombstone=clear_tombstone,
            shown=on_board(appointment),
        )
    if decision.action is Action.DELETE:
        assert link is not None
        try:
            call = delete_call(link.appointment_guid, link.resource_email, link.kept_values, link.appointment_id)
        except MissingDeleteValues as error:
            message = f"cannot delete appointment {link.appointment_guid}: {error}"
            return Verdict(Step.FAIL, decision, guid, link, error=SyncError(ErrorCode.DIME_REJECTED, message))
        return Verdict(Step.WRITE, decision, guid, link, None, call, event, gone=gone, shown=shown_of(link))
    if decision.action is Action.RELINK:
        assert link is not None and event is not None
        relinked = replace(
            link,
            unproven=False,
            change_key=event.change_key,
            synced_at=now.isoformat(),
            series_master_id=event.series_master_id,
            kept_values=link.kept_values or (appointment.kept_values() if appointment else None),
        )
        return Verdict(Step.WRITE, decision, guid, link, relinked, None, event, shown=shown_of(link))
    # SKIP: an unproven link the primary calendar lists is an ordinary link again.
    fresh = replace(link, unproven=False) if proof == "unproven" and link is not None else None
    return Verdict(Step.DONE, decision, guid, link, fresh, event=event)


def _error(error: EventFormatError) -> SyncError:
    return SyncError(ErrorCode.EVENT_UNREADABLE, str(error))


def upserted_link(
    resource: Resource,
    event_id: str,
    guid: str,
    event: Event,
    appointment: Appointment,
    link: Link | None,
    now: datetime,
    content_hash: str | None = None,
) -> Link:
    """The link an accepted upsert leaves (its appointment id is filled from the import's answer).
    content_hash: the appointment's, when the caller computed it already (hashing is a tenth of a
    change's CPU)."""
    shown = on_board(appointment)
    return Link(
        mailbox_id=resource.object_id,
        event_id=event_id,
        appointment_guid=guid,
        origin=link.origin if link else OUTLOOK_ORIGIN,
        change_key=event.change_key,
        content_hash=content_hash or appointment.content_hash(),
        resource_email=resource.email,
        synced_at=now.isoformat(),
        etag=link.etag if link else None,
        series_master_id=event.series_master_id,
        appointment_id=link.appointment_id if link else None,
        kept_values=appointment.kept_values(),
        subject=shown.subject,
        start=shown.start,
    )


def answered(fresh: Link, ids: Mapping[str, str] | None) -> Link:
    """The link with Dime.Scheduler's appointment id as the import answered it (`appointment_ids`
    of the answer: by lower-cased GUID), else the known one."""
    return replace(fresh, appointment_id=(ids or {}).get(fresh.appointment_guid.lower()) or fresh.appointment_id)


def success(resource: Resource | None, mailbox_id: str, event_id: str, v: Verdict, now: datetime) -> Transaction:
    """The success transaction of a written verdict (what the console shows of it included)."""
    return described(
        Transaction(
            id=new_transaction_id(now),
            mailbox_id=mailbox_id,
            direction=OUTLOOK_TO_DIME,
            operation=v.decision.action.value,
            status=Status.SUCCEEDED,
            created_at=now.isoformat(),
            event_id=event_id,
            appointment_guid=v.guid,
            reason=v.decision.reason,
        ),
        v.shown,
        resource,
    )


def as_message(change: Change) -> dict[str, Any]:
    """The change as a notification-queue message: the one it came in, or one a run makes of it
    (a delete is a claim the worker confirms with Graph)."""
    deleted = change.claimed_deleted or change.gone
    return change.message or {
        "mailboxId": change.mailbox_id,
        "eventId": change.event_id,
        "changeType": "deleted" if deleted else "updated",
        "changeKey": None if deleted else change.change_key,
        "subscriptionId": "",
    }


def failure(change: Change, error: SyncError, tenant_id: str, now: datetime) -> Transaction:
    """The failed transaction of a change that could not be synchronised: visible and retryable
    (it carries the notification as a message of the notification queue)."""
    message = as_message(change)
    deleted = message.get("changeType") == "deleted"
    return Transaction(
        id=new_transaction_id(now),
        mailbox_id=change.mailbox_id,
        direction=OUTLOOK_TO_DIME,
        operation="delete" if deleted else "upsert",
        status=Status.FAILED,
        created_at=now.isoformat(),
        event_id=change.event_id,
        appointment_guid=appointment_guid(tenant_id, change.mailbox_id, change.event_id),
        error_code=error.code.value,
        message=error.message,
        payload={"queue": "graph-notifications", "message": message},
    )


def orphan_deleted(written: Link, now: datetime) -> Transaction:
    """The transaction of deleting an appointment our lost race left unlinked."""
    return Transaction(
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
