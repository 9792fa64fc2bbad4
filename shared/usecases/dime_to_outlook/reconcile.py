"""The Dime.Scheduler → Outlook reconcile: Outlook converges to what the planning board holds.

A timer (DIME_RECONCILE_SCHEDULE) lists Dime.Scheduler's appointments over the sync window for
every eligible resource (`GET /appointment`, 20 resources per request), brings each through the
publication worker's own `place` (missing events created, stale ones PATCHed, unchanged ones
cost nothing), and deletes the events of appointments that vanished from the listing. Those
deletes are inferred from absence, so they pass the same circuit breaker as the other direction:
a mailbox that would lose too many planner events at once loses none, and an alert is recorded.
It is also the backfill when a person is onboarded, and the only deletion path when Dime.Scheduler
publishes through a Webhook connector instead of hooks (a connector's payload does not say
"deleted").

A full run (the timer) leaves a run record of the same shape as the other direction's delta and
reconcile runs (`RunStats`, kind `dime-reconcile`, under `~dime-scheduler` in the syncstate
table), which `/api/manage/status` and the console show: appointments listed, writes, deletes,
unchanged, errors, the breaker's message, the Graph and Dime.Scheduler requests it sent, its
duration and outcome. A one-person backfill (onboarding) is logged only, so the record always
describes the last pass over everyone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.request_meter import RequestMeter, metered
from shared.adapters.storage.tables import ConcurrentUpdate
from shared.core.breaker import check_deletes
from shared.core.decision import Action
from shared.core.dime_to_outlook.links import EventLink
from shared.core.dime_to_outlook.publication import (
    Publication,
    PublicationError,
    guid_of,
    items_of,
    parse_publication,
    zone_named,
)
from shared.core.events import EventFormatError, parse_graph_time
from shared.core.runs import DIME_RECONCILE, DIME_SCHEDULER_SCOPE, RunStats
from shared.core.transactions import ErrorCode, Status, SyncError, Transaction, new_transaction_id
from shared.services import Services
from shared.usecases.dime_to_outlook.pipeline.read import BatchReads, Mailboxes, mailbox_for, resource_directory
from shared.usecases.dime_to_outlook.pipeline.remember import (
    DIME_TO_OUTLOOK,
    forget_outlook_side,
    record_transaction,
)
from shared.usecases.dime_to_outlook.pipeline.write import remove
from shared.usecases.dime_to_outlook.place_appointment import apply_publications

log = logging.getLogger(__name__)

RESOURCES_PER_REQUEST = 20


@dataclass
class DimeReconcileStats:
    requests: int = 0  # GET /appointment calls
    listed: int = 0
    unreadable: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    healed: int = 0  # orphans deleted: events with our tag that no current appointment plans there
    unchanged: int = 0
    failed: int = 0
    held_back: dict[str, int] = field(default_factory=dict)  # mailbox → deletes the breaker refused
    problems: list[str] = field(default_factory=list)  # one line per unreadable or failed appointment
    breakers: list[str] = field(default_factory=list)  # the breaker's message per mailbox held back

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def record(self, run: RunStats, meter: RequestMeter) -> RunStats:
        """The figures in the shape of every run record (finish it with its outcome)."""
        run.changes = self.listed + self.unreadable
        run.writes = self.created + self.updated
        run.deletes = self.deleted + self.healed
        run.healed = self.healed
        run.skipped = self.unchanged
        for message in self.problems:
            run.error(message)
        run.breaker = "; ".join(self.breakers)[:4000]
        run.graph_requests = meter.graph
        run.dime_requests = meter.dime
        return run


async def run_dime_reconcile(services: Services, only_emails: set[str] | None = None) -> DimeReconcileStats:
    """Converge Outlook to the planning board (every eligible resource, or those e-mails only).

    A failure (the listing, storage) is recorded in the run record, then raised as before: the
    timer's invocation fails visibly and the next run starts over; nothing was deleted."""
    stats = DimeReconcileStats()
    run = RunStats(DIME_RECONCILE, DIME_SCHEDULER_SCOPE, services.clock(), reason="timer")
    outcome = "failed"
    with metered() as meter:
        try:
            await _reconcile(services, only_emails, stats)
            outcome = "breaker-tripped" if stats.held_back else "completed"
        except SyncError as error:
            run.error(str(error))
            raise
        except Exception as error:
            run.error(f"{type(error).__name__}: {error}")
            raise
        finally:
            stats.record(run, meter).finish(outcome, services.clock())
            if only_emails is None:
                await _save_run(services, run)
            log.info(
                "Dime.Scheduler reconcile%s: %s, %d appointments, %d writes, %d deletes (%d orphans healed), "
                "%d unchanged, %d errors, %d Graph and %d Dime.Scheduler requests, %d ms",
                "" if only_emails is None else f" of {len(only_emails)} e-mail(s)",
                run.outcome,
                run.changes,
                run.writes,
                run.deletes,
                run.healed,
                run.skipped,
                run.errors,
                run.graph_requests,
                run.dime_requests or 0,
                run.duration_ms,
            )
    return stats


async def _save_run(services: Services, run: RunStats) -> None:
    try:
        await services.astore.syncstate.save_run(run)
    except Exception:  # the record is for people; the run's own outcome stands
        log.exception("could not save the Dime.Scheduler reconcile run record")


async def _reconcile(services: Services, only_emails: set[str] | None, stats: DimeReconcileStats) -> None:
    now = services.clock()
    s = services.settings
    start = (now - timedelta(days=s.sync_days_back)).astimezone(UTC)
    end = (now + timedelta(days=s.sync_days_forward)).astimezone(UTC)
    directory = await resource_directory(services, refresh=True)
    numbers: list[str] = []
    onboarded = await Mailboxes.read(services)  # who is onboarded: read once per run
    mailboxes: set[str] = set()  # the calendars of those resources: swept for orphans below
    for resource in directory.values():
        if not (resource.exchange_enabled and resource.email):
            continue
        if only_emails is not None and resource.email not in only_emails:
            continue
        mailbox = await mailbox_for(services, resource.email, onboarded)
        if mailbox is not None:
            numbers.append(resource.resource_no)
            mailboxes.add(mailbox)
    listed: dict[str, Publication] = {}
    present: set[str] = set()  # every appointment the listing carries, readable or not: none vanished
    unnamed = False  # an unreadable item without a GUID: which appointment it is, nobody knows
    zone = zone_named(s.dime_time_zone)
    for offset in range(0, len(numbers), RESOURCES_PER_REQUEST):
        chunk = numbers[offset : offset + RESOURCES_PER_REQUEST]
        # A failure raises: nothing is deleted on a partial listing.
        document = await services.adime.list_appointments(_iso(start), _iso(end), chunk)
        stats.requests += 1
        for item in items_of(document):
            try:
                pub = parse_publication(item, zone)
            except PublicationError as error:
                stats.unreadable += 1
                stats.problem(f"an appointment in the listing is unreadable: {error}")
                log.warning("reconcile: an appointment in the listing is unreadable: %s", error)
                guid = guid_of(item)
                if guid is None:
                    unnamed = True
                else:
                    present.add(guid)
                continue
            present.add(pub.guid)
            if pub.has_times:
                listed[pub.guid] = pub
    stats.listed = len(listed)
    unsettled: set[str] = set()  # appointments whose placing failed this run: their events are not judged
    ruled: dict[str, list[tuple[EventLink, str]]] = defaultdict(list)  # events a rule keeps off Outlook
    # Through the worker's own entry, as one batch (who is onboarded and the rules read once): a
    # permanent failure becomes a visible, retryable failed transaction (as for a publication).
    messages = [{"change": "updated", "publication": p.to_message(), "authoritative": True} for p in listed.values()]
    outcomes = await apply_publications(messages, services, reads=BatchReads(services, onboarded))
    for pub, outcome in zip(listed.values(), outcomes, strict=True):
        if isinstance(outcome, SyncError):
            stats.failed += 1
            unsettled.add(pub.guid)
            stats.problem(f"appointment {pub.guid}: {outcome}; the next run tries again")
            log.warning("reconcile: appointment %s failed (%s); the next run tries again", pub.guid, outcome.code.value)
            continue
        if outcome.error is not None:
            stats.failed += 1
            unsettled.add(pub.guid)
            stats.problem(f"appointment {pub.guid}: {outcome.error} (a failed transaction)")
            continue
        for link, reason in outcome.held:
            ruled[link.mailbox_id].append((link, reason))
        for decision in outcome.decisions.values():
            if decision.reason.startswith("held: "):
                continue  # counted when the breaker lets it through
            if decision.action is Action.UPSERT:
                if decision.reason == "new":
                    stats.created += 1
                else:
                    stats.updated += 1
            elif decision.action is Action.DELETE:
                stats.deleted += 1
            else:
                stats.unchanged += 1
    # Our events in those calendars, listed before the links are read: an event created and linked
    # meanwhile is then either listed with its link or not listed at all, never judged unlinked.
    tagged: dict[str, list[dict[str, Any]]] = {}
    listed_at = services.clock()  # rows saved before this moment name events the listing must show
    if not unnamed:
        if only_emails is None:
            # Also every calendar we hold a row for, eligible or not any more (a resource whose
            # e-mail or Exchange flag changed, a mailbox an earlier version wrote to): an event of
            # ours there that nothing plans is an orphan too.
            rows = await services.astore.eventlinks.links()
            mailboxes |= {row.mailbox_id for row in rows if row.event_id or row.pending is not None}
        for mailbox in sorted(mailboxes):
            found = await services.graph.tagged_in_window(mailbox, _iso(start), _iso(end))
            if found is None:
                continue  # no such mailbox (any more): nothing of ours to judge there
            tagged[mailbox] = [e for e in found if _starts_inside(e, start, end)]
    # Vanished: linked events of the listed resources, in the window, whose appointment was not listed.
    links = await services.astore.eventlinks.links()
    asked = {r.email for r in directory.values() if r.resource_no in set(numbers) and r.email}
    by_mailbox: dict[str, list[EventLink]] = defaultdict(list)
    candidates: dict[str, list[EventLink]] = defaultdict(list)
    for link in links:
        if link.event_id is None:
            continue
        by_mailbox[link.mailbox_id].append(link)
        inside = link.start is not None and start <= datetime.fromisoformat(link.start) < end
        if inside and link.resource_email in asked and link.appointment_guid not in present:
            candidates[link.mailbox_id].append(link)
    if unnamed and candidates:
        # Missing means read it again: any of these may be the appointment we could not read.
        log.warning("reconcile: an unreadable appointment without a GUID: no event deleted this run")
        stats.breakers.append("no event deleted: an appointment in the listing had no readable GUID")
        candidates.clear()
    # Orphans: an event with our tag that no current appointment plans for that person, whatever
    # left it there (a create that lost its row, a crash, a link lost): kept only when its row names
    # it and its appointment is listed (or its create is in flight), or when its appointment could
    # not be judged this run (unreadable, failed).
    pairs = {(link.appointment_guid, link.mailbox_id): link for link in links}
    linked_ids = {link.event_id for gone in candidates.values() for link in gone}
    orphans: dict[str, list[tuple[str, str]]] = defaultdict(list)  # mailbox → (event id, GUID)
    for mailbox, events in tagged.items():
        for event in events:
            guid = event["tag"].split("|", 1)[0]
            if event["id"] in linked_ids or guid in unsettled or (guid in present and guid not in listed):
                continue
            pair = pairs.get((guid, mailbox))
            if guid in listed and pair is not None and (pair.event_id == event["id"] or pair.pending is not None):
                continue
            if pair is not None and pair.event_id == event["id"]:
                candidates[mailbox].append(pair)  # vanished, its row outside what the link test saw
                continue
            orphans[mailbox].append((event["id"], guid))
    for mailbox in sorted(set(candidates) | set(orphans) | set(ruled)):
        gone, strays = candidates.get(mailbox, []), orphans.get(mailbox, [])
        # A rule set that keeps many events off Outlook at once is a mass delete like any other.
        removals = [(link, "appointment-vanished") for link in gone] + ruled.get(mailbox, [])
        ours = max(len(by_mailbox[mailbox]), len(tagged.get(mailbox, [])))
        verdict = check_deletes(len(removals) + len(strays), ours, share=s.delete_breaker_share)
        if not verdict.allowed:
            stats.held_back[mailbox] = len(removals) + len(strays)
            stats.breakers.append(f"{mailbox}: {verdict.message}")
            every = [link for link, _ in removals]
            await _alert(services, mailbox, verdict.message, every, [g for _, g in strays])
            continue
        for link, reason in removals:
            try:
                await remove(services, link, reason)
                stats.deleted += 1
            except SyncError as error:
                stats.failed += 1
                stats.problem(f"delete of event {link.event_id} in {mailbox}: {error}")
                log.warning("reconcile: delete of %s failed (%s)", link.event_id, error.code.value)
        for event_id, guid in strays:
            try:
                await _delete_orphan(services, mailbox, event_id, guid)
                stats.healed += 1
            except SyncError as error:
                stats.failed += 1
                stats.problem(f"delete of orphan event {event_id} in {mailbox}: {error}")
                log.warning("reconcile: delete of orphan %s failed (%s)", event_id, error.code.value)

    await _replace_missing(services, links, listed, tagged, unsettled, (start, end), listed_at, stats)


async def _replace_missing(
    services: Services,
    links: list[EventLink],
    listed: dict[str, Publication],
    tagged: dict[str, list[dict[str, Any]]],
    unsettled: set[str],
    window: tuple[datetime, datetime],
    listed_at: datetime,
    stats: DimeReconcileStats,
) -> None:
    """The other half of healing: a row names an event of an appointment the planner still plans
    for that person, saved before the calendar was listed, and the listing does not hold it (a
    person's deletion whose notification never came, or a create undone by an instance that lost a
    race). The row forgets the event (a new generation, so a new transactionId) and the planner's
    version is placed again, as DIME_OUTLOOK_EDITS=revert promises; under `keep` a missing event
    may be the person's wish, and stays away."""
    if services.settings.dime_outlook_edits != "revert":
        return
    start, end = window
    shown = {mailbox: {e["id"] for e in events} for mailbox, events in tagged.items()}
    missing: list[EventLink] = []
    for link in links:
        pub = listed.get(link.appointment_guid)
        if link.event_id is None or link.pending is not None or pub is None or link.mailbox_id not in shown:
            continue
        if link.appointment_guid in unsettled or link.event_id in shown[link.mailbox_id]:
            continue
        inside = [t for t in (link.start, pub.start) if t is not None and start <= datetime.fromisoformat(t) < end]
        if len(inside) < 2 or datetime.fromisoformat(link.synced_at) >= listed_at:
            continue  # not judged: outside the window, or written after the listing began
        missing.append(link)
    again: set[str] = set()
    for link in missing:
        gone = replace(link, event_id=None, generation=link.generation + 1, sent_hash=None, pending=None)
        try:
            await services.astore.eventlinks.save_link(replace(gone, synced_at=services.clock().isoformat()))
        except ConcurrentUpdate:
            continue  # someone wrote the pair meanwhile: theirs stands, the next run looks again
        await forget_outlook_side(services, link.mailbox_id, link.event_id or "")
        log.info("reconcile: event of %s in %s is gone from the calendar; placing it again",
                 link.appointment_guid, link.mailbox_id)  # fmt: skip
        again.add(link.appointment_guid)
    guids = sorted(again)
    messages = [{"change": "updated", "publication": listed[g].to_message(), "authoritative": True} for g in guids]
    for guid, outcome in zip(guids, await apply_publications(messages, services), strict=True):
        if isinstance(outcome, SyncError):
            stats.failed += 1
            stats.problem(f"placing appointment {guid} again: {outcome}; the next run tries again")
            continue
        stats.healed += sum(1 for d in outcome.decisions.values() if d.action is Action.UPSERT)


async def _delete_orphan(services: Services, mailbox: str, event_id: str, guid: str) -> None:
    """Delete an event of ours that nothing plans there (a 404 or 403 "already deleted" is fine)."""
    await services.graph.delete_event(mailbox, event_id)
    await forget_outlook_side(services, mailbox, event_id)
    await record_transaction(services, mailbox, event_id, guid, "delete", "orphan")
    log.info("reconcile: deleted orphan event %s of appointment %s in %s", event_id[-12:], guid, mailbox)


def _starts_inside(event: dict[str, Any], start: datetime, end: datetime) -> bool:
    """Whether the event starts inside the window (the listing's own test for appointments); an
    unreadable start is not judged (kept)."""
    try:
        begins = parse_graph_time(event.get("start"), all_day=False)
    except EventFormatError:
        return False
    return start <= begins < end


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _alert(
    services: Services, mailbox: str, message: str, gone: list[EventLink], strays: list[str] | None = None
) -> None:
    now = services.clock()
    await services.astore.add_transaction(
        Transaction(
            id=new_transaction_id(now),
            mailbox_id=mailbox,
            direction=DIME_TO_OUTLOOK,
            operation="delete",
            status=Status.FAILED,
            created_at=now.isoformat(),
            reason="mass-delete",
            error_code=ErrorCode.CIRCUIT_BREAKER_TRIPPED.value,
            message=message,
            payload={
                "source": "dime-reconcile",
                "deletes": len(gone) + len(strays or []),
                "appointments": ([g.appointment_guid for g in gone] + list(strays or []))[:50],
            },
        )
    )
