"""Bringing one Dime.Scheduler appointment to Outlook: read, decide, execute, remember.

The mirror of `sync_event` (Outlook → Dime.Scheduler). Every path that learns of a planner change
ends here: the publication worker, the reconcile timer, retries, and the Outlook → Dime.Scheduler
path when a person edited a planner-owned event (`planner_owned`). Order matters as on the other
side: Graph's write first, the links only after Graph accepted it, so a failure is retried
instead of forgotten, and a retried create carries the same transactionId (Graph drops it). A
create is announced in its row before it is sent (`EventLink.pending`), so a create whose row
never names it (a crash, a lost race) is found by its tag and undone by the next delivery.

Per appointment: the eligible assigned resources each get one Outlook event; the others' events
are deleted. Per (appointment, mailbox) the decision is create / PATCH (only when what we would
send changed) / delete / skip, with a reason; every Graph write is a transaction `dime-to-outlook`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.core.api_format import iso_utc
from shared.core.decision import Action, Decision
from shared.core.dime_to_outlook.decision import appointment_refusal, decide_event
from shared.core.dime_to_outlook.eligibility import (
    DIRECTORY,
    EMAIL_MISMATCH,
    NO_MAILBOX,
    RESOURCE_UNKNOWN,
    DimeResource,
    assignments_refusal,
    directory_entry,
    onboarded_mailboxes,
    refusal,
    resources_from_listing,
    target_email,
)
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.dime_to_outlook.outlook_event import (
    desired_hash,
    event_body,
    same_content,
    stored_hash,
    transaction_id,
    with_look,
)
from shared.core.dime_to_outlook.publication import (
    Assignment,
    Publication,
    appointment_id_of,
    clamped,
    guid_of,
    items_of,
)
from shared.core.dime_to_outlook.rule_facts import facts_of
from shared.core.dime_to_outlook.rules import RuleSet, Verdict
from shared.core.dime_to_outlook.tag import tag_value
from shared.core.events import Event, EventFormatError, event_from_graph
from shared.core.links import DIME_ORIGIN, Link
from shared.core.resources import Resource
from shared.core.shown import Shown, in_calendar, shown_of
from shared.core.transactions import DIME_PARTITION, ErrorCode, Status, SyncError, Transaction, new_transaction_id
from shared.names import PUBLICATIONS_QUEUE
from shared.services import Services
from shared.usecases.dime_to_outlook.rules_in_force import rules_in_force
from shared.usecases.event_locks import event_locks

log = logging.getLogger(__name__)

DIME_TO_OUTLOOK = "dime-to-outlook"
DIRECTORY_TTL_SECONDS = 300.0
MAILBOX_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class Target:
    """An eligible assigned resource: where its event goes and what the tag names."""

    mailbox_id: str
    resource: str
    email: str


@dataclass
class PublicationOutcome:
    skipped: str | None = None  # an appointment-level reason (stale, deleted, outlook-origin)
    decisions: dict[str, Decision] = field(default_factory=dict)  # mailbox → decision
    error: SyncError | None = None
    # Deletes a rule asks for, not executed (`hold_rule_deletes`): the reconcile passes them
    # through the circuit breaker with its other deletes.
    held: list[tuple[EventLink, str]] = field(default_factory=list)


# Lookups: GET /resource (cached), the directory's e-mail → mailbox ---------------------------


class _Directory:
    """Dime.Scheduler's resources, and (DIME_OUTLOOK_TARGETS=directory only) Graph's answers for
    their e-mails, cached per process.

    A planner change then costs no Dime.Scheduler read at all (one GET /resource per 5 minutes);
    an unknown resource number, or a payload e-mail that differs from the record, refreshes the
    listing at most once a minute (a resource added or changed since). Who is onboarded is never
    cached here: it is read once per message (`Mailboxes`), so an onboarding is seen at once by
    every instance. Graph's answers (directory mode) live
    MAILBOX_TTL_SECONDS; onboarding a person drops theirs in this process (`forget_mailboxes`),
    and on the other instances the fresh onboarded index wins over a cached "no mailbox" anyway."""

    def __init__(self) -> None:
        self.resources: dict[str, DimeResource] = {}
        self.loaded_at = float("-inf")
        self.mailboxes: dict[str, tuple[str | None, float]] = {}  # e-mail → Graph's answer, when
        self.requests = 0  # GET /resource calls (measured by the tests)


def directory_of(services: Services) -> _Directory:
    """One cache per Services (the process-wide one in Azure; a fresh one per test)."""
    if services.caches.dime_directory is None:
        services.caches.dime_directory = _Directory()
    directory: _Directory = services.caches.dime_directory
    return directory


async def resource_directory(services: Services, *, refresh: bool = False) -> dict[str, DimeResource]:
    directory = directory_of(services)
    async with event_locks.hold(("dime-directory", "")):  # concurrent messages share one listing
        now = time.monotonic()
        if refresh and now - directory.loaded_at < 1.0:
            refresh = False  # another message refreshed it just now
        if refresh or now - directory.loaded_at > DIRECTORY_TTL_SECONDS:
            listing = await asyncio.to_thread(services.dime.list_resources)
            directory.requests += 1
            directory.resources = resources_from_listing(listing)
            directory.loaded_at = time.monotonic()
        return directory.resources


def forget_mailboxes(services: Services, addresses: list[str]) -> None:
    """Drop this process's cached answers for these addresses (a person was just onboarded, or
    their e-mail changed): the next message asks again."""
    cached = directory_of(services).mailboxes
    for address in addresses:
        cached.pop(address.strip().lower(), None)


class Mailboxes:
    """The directory's e-mail → mailbox object id, for one message (or one reconcile run).

    Built once: one read of the resources table (the people onboarded here), however many
    assignments the message names. A Graph user lookup happens only under
    DIME_OUTLOOK_TARGETS=directory, only for an e-mail of Dime.Scheduler's resource directory
    (callers pass nothing else), and is cached per process."""

    def __init__(self, services: Services, onboarded: dict[str, str]) -> None:
        self.services = services
        self.onboarded = onboarded
        self.mode = services.settings.dime_outlook_targets

    @classmethod
    async def read(cls, services: Services) -> Mailboxes:
        people = await asyncio.to_thread(lambda: list(services.store.list_resources()))
        return cls(services, onboarded_mailboxes(people))

    async def of(self, email: str) -> str | None:
        found = self.onboarded.get(email)
        if found is not None or self.mode != DIRECTORY:
            return found
        directory = directory_of(self.services)
        async with event_locks.hold(("mailbox-of", email)):
            now = time.monotonic()
            cached = directory.mailboxes.get(email)
            if cached is not None and now - cached[1] < MAILBOX_TTL_SECONDS:
                return cached[0]
            user = await self.services.graph.get_user(email)
            answer = str(user["id"]).lower() if user and user.get("id") else None
            directory.mailboxes[email] = (answer, now)
            return answer


async def mailbox_for(services: Services, email: str, mailboxes: Mailboxes | None = None) -> str | None:
    """The mailbox of a directory e-mail (see `Mailboxes`; pass one when asking for many)."""
    return await (mailboxes or await Mailboxes.read(services)).of(email.strip().lower())


def _outdated(assignment: Assignment, directory: dict[str, DimeResource]) -> bool:
    """Whether the cached listing may be what refuses this assignment (unknown, or an e-mail hint
    that differs from the record)."""
    _, why = target_email(assignment, directory_entry(assignment, directory))
    return why in (RESOURCE_UNKNOWN, EMAIL_MISMATCH)


async def targets_of(
    services: Services, pub: Publication, mailboxes: Mailboxes | None = None
) -> tuple[dict[str, Target], list[tuple[str, str]]]:
    """The eligible assigned resources by mailbox, and the others with the reason.

    The payload only names resources; every target comes from the directory's record. A refused
    e-mail hint is logged once per appointment (a forged payload costs one line). `mailboxes`:
    one index for many appointments (the rules preview)."""
    directory = await resource_directory(services)
    if any(_outdated(a, directory) for a in pub.assignments) and (
        time.monotonic() - directory_of(services).loaded_at > 60
    ):
        # A resource added, or its e-mail changed, since the listing: read it again (at most once a
        # minute, so forged numbers and e-mails cost one GET /resource a minute, not one each).
        directory = await resource_directory(services, refresh=True)
    mode = services.settings.dime_outlook_targets
    targets: dict[str, Target] = {}
    unmatched: list[tuple[str, str]] = []
    for assignment in pub.assignments:
        entry = directory_entry(assignment, directory)
        email, why = target_email(assignment, entry)
        label = assignment.resource_no or assignment.email or "?"
        mailbox = None
        if email is not None:
            mailboxes = mailboxes or await Mailboxes.read(services)
            mailbox = await mailboxes.of(email)
        why = why or refusal(assignment, entry, mailbox, mode)
        if why is not None or mailbox is None or email is None:
            unmatched.append((label, why or NO_MAILBOX))
            continue
        targets.setdefault(mailbox, Target(mailbox, label, email))
    mismatched = [label for label, why in unmatched if why == EMAIL_MISMATCH]
    if mismatched:
        log.warning(
            "appointment %s: %d assignment(s) name an e-mail other than Dime.Scheduler's resource record "
            "(refused, nothing written for them): %s",
            pub.guid,
            len(mismatched),
            ", ".join(label[:40] for label in mismatched[:10]),
        )
    return targets, unmatched


# The worker ----------------------------------------------------------------------------------


async def apply_publication(
    message: dict[str, Any], services: Services, *, record_failures: bool = True
) -> PublicationOutcome:
    """The dime-publications worker: transient failures raise (the queue redelivers, then
    poisons); permanent ones become a failed transaction carrying the message.

    A LastModifiedDate far in the future is clamped to the time of receipt (`receivedAt`, else
    now); a publication carrying only Dime.Scheduler's internal Id is resolved first (GET
    /appointment/{id}). `authoritative` (the reconcile's messages): Dime.Scheduler's own state,
    which overrides a stale verdict."""
    pub = Publication.from_message(message["publication"])
    received = message.get("receivedAt")
    pub = clamped(pub, datetime.fromisoformat(received) if isinstance(received, str) else services.clock())
    deleting = message.get("change") == "deleted"
    try:
        if not deleting and (too_many := assignments_refusal(pub)):
            # Bounded work: refused before any lookup or write; visible and retryable as a whole.
            raise SyncError(ErrorCode.PUBLICATION_INVALID, too_many)
        if not pub.resolved:
            pub = await resolve_guid(services, pub)
        authoritative = message.get("authoritative") is True  # the reconcile: its deletes pass its breaker
        return await place(
            services, pub, deleting=deleting, authoritative=authoritative, hold_rule_deletes=authoritative
        )
    except SyncError as error:
        if error.code.transient:
            log.warning("transient failure placing appointment %s, the queue will deliver again: %s", pub.guid, error)
            raise
        if record_failures:
            await asyncio.to_thread(_record_failure, services, pub.guid, error, message)
        return PublicationOutcome(skipped="failed", error=error)


async def resolve_guid(services: Services, pub: Publication) -> Publication:
    """The AppointmentGuid of a publication that carries only the internal Id (as the Webhook
    connector's payload in the evidence does), from GET /appointment/{id}. Its answer's shape is
    unverified: read it as a publication (one object, an array or an envelope), taking the item
    whose Id is the one asked for (or that has no Id). Not found, or no GUID in the answer: a
    permanent failure (a visible failed transaction), never a guess."""
    assert pub.appointment_id is not None
    document = await asyncio.to_thread(services.dime.get_appointment, pub.appointment_id)
    if document is None:
        raise SyncError(
            ErrorCode.PUBLICATION_UNRESOLVED,
            f"appointment Id {pub.appointment_id} has no AppointmentGuid in the payload and GET /appointment/"
            f"{pub.appointment_id} found no such appointment (404): deleted meanwhile, or another environment",
        )
    try:
        items = items_of(document)
    except ValueError:
        items = []
    for item in items:
        guid = guid_of(item)
        if guid is not None and appointment_id_of(item) in (None, pub.appointment_id):
            log.info("appointment Id %s is %s (GET /appointment/{id})", pub.appointment_id, guid)
            return replace(pub, guid=guid)
    raise SyncError(
        ErrorCode.PUBLICATION_UNRESOLVED,
        f"appointment Id {pub.appointment_id}: GET /appointment/{pub.appointment_id} answered without an "
        "AppointmentGuid for that Id",
    )


async def place(
    services: Services,
    pub: Publication,
    *,
    deleting: bool = False,
    authoritative: bool = False,
    hold_rule_deletes: bool = False,
) -> PublicationOutcome:
    """Decide and execute for every resource of one appointment (`authoritative`: see
    `appointment_refusal`; its LastModifiedDate then replaces the one applied before).

    The rules (`rules_in_force`) decide per eligible person whether the appointment reaches their
    calendar and how it looks there: a skipped pair is listed as unmatched with the rule's name
    and its event, if any, deleted (`hold_rule_deletes`: left to the caller's breaker)."""
    from shared.adapters.storage.event_links_store import EventLinkStore
    from shared.adapters.storage.tables import ConcurrentUpdate

    store = EventLinkStore(services.store)
    async with event_locks.hold(("appointment", pub.guid)):
        state, links = await asyncio.to_thread(store.read, pub.guid)
        why = appointment_refusal(pub, state, deleting, authoritative=authoritative)
        if why is not None:
            # Even a stale or refused delivery settles what a lost create left behind: judged by
            # the version applied last (the planner's current one), never by this message.
            links = await _settle_intents(services, store, links, _planned_mailboxes(state, links))
            log.info("appointment %s: skip (%s)", pub.guid, why)
            return PublicationOutcome(skipped=why)
        if deleting:
            targets, unmatched = {}, []
        elif not pub.assignments_known:
            # The payload said nothing about resources: keep placing it where it is; nothing is
            # deleted on a missing field (reconcile's listing settles assignments).
            known = [link for link in links.values() if link.event_id]
            targets = {k.mailbox_id: Target(k.mailbox_id, k.resource, k.resource_email) for k in known}
            unmatched = list(state.unmatched) if state else []
        else:
            targets, unmatched = await targets_of(services, pub)
        looks: dict[str, Verdict] = {}
        if targets:
            rules = await rules_in_force(services)
            targets, skipped, looks = _apply_rules(rules, pub, targets)
            unmatched = [*unmatched, *skipped]
        newest = pub.last_modified
        replaceable = authoritative and newest is not None
        if state is not None and state.last_modified and (newest is None or state.last_modified > newest):
            newest = newest if replaceable else state.last_modified
        fresh = AppointmentState(
            guid=pub.guid,
            last_modified=newest,
            deleted=deleting,
            publication=(state.publication if state else None) if deleting else pub.to_message(),
            unmatched=tuple(unmatched),
            updated_at=services.clock().isoformat(),
            etag=state.etag if state else None,
        )
        try:
            # The intent first: a tombstone or the planner's version is in place before Graph is
            # touched, so a replay racing this write is already refused. (Unchanged: no write.)
            if state is None or replace(state, updated_at=None, etag=None) != replace(
                fresh, updated_at=None, etag=None
            ):
                await asyncio.to_thread(store.save_state, fresh)
        except ConcurrentUpdate:
            raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"appointment {pub.guid} changed under us") from None
        links = await _settle_intents(services, store, links, set(targets))
        outcome = PublicationOutcome()
        reason_gone = "appointment-deleted" if deleting else None
        unmatched_reason = {label: reason for label, reason in unmatched}
        for mailbox in sorted(set(targets) | {m for m, link in links.items() if link.event_id or link.dismissed}):
            link = links.get(mailbox)
            target = targets.get(mailbox)
            verdict = looks.get(mailbox)
            if target is not None:
                body = _body(services, pub, target.resource, verdict)
                decision = decide_event(desired_hash(body), None, link)
            else:
                body = None
                why_not = reason_gone or (unmatched_reason.get(link.resource) if link else None) or "unassigned"
                decision = decide_event(None, why_not, link)
                if hold_rule_deletes and decision.action is Action.DELETE and why_not.startswith(RULE_PREFIX):
                    assert link is not None
                    outcome.held.append((link, why_not))
                    outcome.decisions[mailbox] = Decision(Action.SKIP, "held: " + why_not)
                    continue
            outcome.decisions[mailbox] = decision
            await _execute(services, store, pub, mailbox, target, link, decision, body, verdict)
        return outcome


RULE_PREFIX = "rule: "


def _apply_rules(
    rules: RuleSet, pub: Publication, targets: dict[str, Target]
) -> tuple[dict[str, Target], list[tuple[str, str]], dict[str, Verdict]]:
    """The targets a rule lets through (with the verdict that shapes their event), and the ones it
    keeps off Outlook, as unmatched entries naming the rule."""
    kept: dict[str, Target] = {}
    skipped: list[tuple[str, str]] = []
    looks: dict[str, Verdict] = {}
    for mailbox, target in targets.items():
        verdict = rules.evaluate(facts_of(pub, target.resource))
        if verdict.skipped:
            skipped.append((target.resource, f"{RULE_PREFIX}{verdict.rule}"))
            continue
        kept[mailbox] = target
        if verdict.rule is not None:
            looks[mailbox] = verdict
    return kept, skipped, looks


def _body(services: Services, pub: Publication, resource: str, verdict: Verdict | None = None) -> dict[str, Any]:
    s = services.settings
    body = event_body(pub, resource, s.dime_event_show_as, s.dime_category_time_marker)
    return with_look(body, pub, resource, verdict.outcome) if verdict is not None else body


async def _execute(
    services: Services,
    store: Any,
    pub: Publication,
    mailbox: str,
    target: Target | None,
    link: EventLink | None,
    decision: Decision,
    body: dict[str, Any] | None,
    verdict: Verdict | None = None,
) -> None:
    log.info("appointment %s in %s: %s (%s)", pub.guid, mailbox, decision.action.value, decision.reason)
    if decision.action is Action.UPSERT:
        assert target is not None and body is not None
        await _write(services, store, pub, target, link, body, decision, rule=verdict.rule if verdict else None)
    elif decision.action is Action.DELETE:
        assert link is not None
        await _remove(services, store, link, decision.reason)


async def _write(
    services: Services,
    store: Any,
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
        if answer is not None and not await _in_primary_calendar(services, mailbox, answer):
            log.info("appointment %s in %s: the patched event is not in the calendar; creating it again", guid, mailbox)
            answer = None
        if answer is None:
            generation += 1  # deleted in Outlook meanwhile: its transactionId is spent
    intent: EventLink | None = None
    if answer is None:
        operation = "create"
        if link is not None and link.event_id is None and link.pending is not None:
            generation = max(generation, link.pending)  # the same transactionId: Graph hands back that create
        intent = await _save_event_link(
            store,
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
        saved = await _save_event_link(store, fresh)
    else:
        saved = await _save_created(services, store, fresh, answer)
    await _remember_outlook_side(services, mailbox, answer, guid, target.email, shown)
    reason = decision.reason if rule is None else f"{decision.reason} ({RULE_PREFIX}{rule})"
    await _transaction(services, mailbox, answer["id"], guid, operation, reason, shown)
    return saved


async def _in_primary_calendar(services: Services, mailbox: str, answer: dict[str, Any]) -> bool:
    """Whether the primary calendar lists a patched event over its own time range (the proof the
    Outlook → Dime.Scheduler path asks of a claimed delete; a 200 from PATCH is not one)."""
    from shared.usecases.outlook_to_dime.sync_event import in_primary_calendar

    return await in_primary_calendar(services, mailbox, answer)


async def _save_created(services: Services, store: Any, fresh: EventLink, answer: dict[str, Any]) -> EventLink:
    """Name the created event in the pair's row (conditional on our intent). Losing it to another
    instance undoes the create at once, unless the winner named the same event (its create carried
    the same transactionId) or adopted our intent (its create will); a failed undo writes the intent
    again, so the next delivery of this appointment (even a stale one) deletes the event."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    try:
        return await asyncio.to_thread(store.save_link, fresh)
    except ConcurrentUpdate:
        pass
    _, links = await asyncio.to_thread(store.read, fresh.appointment_guid)
    now = links.get(fresh.mailbox_id)
    if now is not None and (now.event_id == answer["id"] or (now.event_id is None and now.pending == fresh.generation)):
        raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of {fresh.appointment_guid} changed under us")
    try:
        await services.graph.delete_event(fresh.mailbox_id, answer["id"])
    except SyncError:
        if now is not None and now.pending is None:
            with contextlib.suppress(ConcurrentUpdate):  # else: rewritten again; the reconcile's sweep remains
                await asyncio.to_thread(store.save_link, replace(now, pending=fresh.generation))
        raise
    log.info("appointment %s in %s: undid our create, which lost its link", fresh.appointment_guid, fresh.mailbox_id)
    await _transaction(services, fresh.mailbox_id, answer["id"], fresh.appointment_guid, "delete", "lost-create-undone")
    raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of {fresh.appointment_guid} changed under us")


def _planned_mailboxes(state: AppointmentState | None, links: dict[str, EventLink]) -> set[str]:
    """The mailboxes the version applied last plans an event in, as far as the rows tell (a
    stale delivery judges intents by it, never by its own older version)."""
    if state is None or state.deleted or not state.publication:
        return set()
    pub = Publication.from_message(state.publication)
    if not pub.assignments_known:
        return {m for m, link in links.items() if link.event_id}
    return {m for m, link in links.items() if pub.names_resource(link.resource)}


async def _settle_intents(
    services: Services, store: Any, links: dict[str, EventLink], wanted: set[str]
) -> dict[str, EventLink]:
    """Settle the intents (`pending`) that creates left in this appointment's rows.

    A mailbox that should get an event and has none keeps its intent: `_write` creates with the
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
            await _forget_outlook_side(services, mailbox, event["id"])
            await _transaction(services, mailbox, event["id"], link.appointment_guid, "delete", "lost-create-undone")
            log.info("appointment %s in %s: deleted an event a lost create left", link.appointment_guid, mailbox)
        cleared = replace(
            link,
            pending=None,
            generation=max(link.generation, link.pending + 1),
            synced_at=services.clock().isoformat(),
        )
        settled[mailbox] = await _save_event_link(store, cleared)
    return settled


def _shows(answer: dict[str, Any], body: dict[str, Any]) -> bool:
    try:
        return same_content(event_from_graph(answer), body)
    except EventFormatError:
        return False


async def _remove(services: Services, store: Any, link: EventLink, reason: str) -> None:
    assert link.event_id is not None or link.dismissed
    if link.event_id is not None:
        await services.graph.delete_event(link.mailbox_id, link.event_id)
    gone = replace(link, event_id=None, generation=link.generation + 1, sent_hash=None, dismissed=False)
    await _save_event_link(store, replace(gone, synced_at=services.clock().isoformat()))
    if link.event_id is not None:
        await _forget_outlook_side(services, link.mailbox_id, link.event_id)
        shown = Shown(link.subject, iso_utc(link.start))
        await _transaction(services, link.mailbox_id, link.event_id, link.appointment_guid, "delete", reason, shown)


async def _save_event_link(store: Any, link: EventLink) -> EventLink:
    from shared.adapters.storage.tables import ConcurrentUpdate

    try:
        return await asyncio.to_thread(store.save_link, link)
    except ConcurrentUpdate:
        # Another instance wrote this pair meanwhile: deliver again and decide from fresh state
        # (a repeated create carries the same transactionId, so it cannot duplicate).
        raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of {link.appointment_guid} changed under us") from None


async def _remember_outlook_side(
    services: Services, mailbox: str, answer: dict[str, Any], guid: str, email: str, shown: Shown | None = None
) -> None:
    """The Outlook → Dime.Scheduler link (origin "dime"): its changeKey makes every echo of this
    write a skip without a Graph read, and its hash tells an echo from a person's edit."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    try:
        event: Event | None = event_from_graph(answer)
    except EventFormatError:
        event = None
    for _ in range(3):
        existing = await asyncio.to_thread(services.store.get_link, mailbox, answer["id"])
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
            await asyncio.to_thread(services.store.save_link, fresh)
            return
        except ConcurrentUpdate:
            continue
    raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"the link of event {answer['id'][-12:]} kept changing")


async def _forget_outlook_side(services: Services, mailbox: str, event_id: str) -> None:
    from shared.adapters.storage.tables import ConcurrentUpdate

    for _ in range(3):
        existing = await asyncio.to_thread(services.store.get_link, mailbox, event_id)
        if existing is None:
            return
        try:
            await asyncio.to_thread(services.store.delete_link, existing)
            return
        except ConcurrentUpdate:
            continue


async def _transaction(
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
    await asyncio.to_thread(services.store.add_transaction, transaction)


def _record_failure(services: Services, guid: str, error: SyncError, message: dict[str, Any]) -> None:
    now = services.clock()
    services.store.add_transaction(
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
    from shared.adapters.storage.event_links_store import EventLinkStore
    from shared.adapters.storage.tables import ConcurrentUpdate

    store = EventLinkStore(services.store)
    state, links = await asyncio.to_thread(store.read, link.appointment_guid)
    pair = links.get(mailbox)
    if pair is None or pair.event_id != event_id:
        if event is None:
            await _forget_outlook_side(services, mailbox, event_id)  # a leftover of an event we replaced
        return Decision(Action.SKIP, "planner-owned")
    if state is None or state.deleted or not state.publication:
        return Decision(Action.SKIP, "planner-owned")  # the publication worker owns what happens next
    pub = Publication.from_message(state.publication)
    if pub.assignments_known and not pub.names_resource(pair.resource):
        return Decision(Action.SKIP, "planner-owned")  # unassigned meanwhile: the worker deletes it
    verdict = (await rules_in_force(services)).evaluate(facts_of(pub, pair.resource))
    if verdict.skipped:
        return Decision(Action.SKIP, "planner-owned")  # a rule keeps it off Outlook: the worker deletes it
    body = _body(services, pub, pair.resource, verdict if verdict.rule is not None else None)
    keep = services.settings.dime_outlook_edits == "keep"
    target = Target(mailbox, pair.resource, pair.resource_email)
    if event is not None:
        if stored_hash(event) == link.content_hash or same_content(event, body):
            relinked = replace(link, change_key=event.change_key, content_hash=stored_hash(event))
            with contextlib.suppress(ConcurrentUpdate):  # someone recorded a newer version: theirs stands
                await asyncio.to_thread(services.store.save_link, relinked)
            return Decision(Action.RELINK, "echo")
        if keep:
            kept = replace(link, change_key=event.change_key, content_hash=stored_hash(event))
            with contextlib.suppress(ConcurrentUpdate):
                await asyncio.to_thread(services.store.save_link, kept)
            await _transaction(
                services, mailbox, event_id, link.appointment_guid, "keep", "outlook-edit-kept", shown_of(link)
            )
            return Decision(Action.RELINK, "outlook-edit-kept")
        reverted = Decision(Action.UPSERT, "outlook-edit-reverted")
        await _write(services, store, pub, target, pair, body, reverted)
        return reverted
    # Deleted in Outlook. The new state is saved before the old link is forgotten, so a failure in
    # between leaves this notification retryable (the old link still routes it here).
    gone = replace(pair, event_id=None, generation=pair.generation + 1)
    if keep:
        await _save_event_link(store, replace(gone, dismissed=True))
        await _forget_outlook_side(services, mailbox, event_id)
        await _transaction(
            services, mailbox, event_id, link.appointment_guid, "keep", "outlook-delete-kept", shown_of(link)
        )
        return Decision(Action.DELETE, "outlook-delete-kept")
    recreated = Decision(Action.UPSERT, "outlook-delete-reverted")
    await _write(services, store, pub, target, gone, body, recreated)
    await _forget_outlook_side(services, mailbox, event_id)
    return recreated
