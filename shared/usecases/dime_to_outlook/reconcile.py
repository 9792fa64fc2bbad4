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
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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
from shared.core.transactions import ErrorCode, Status, SyncError, Transaction, new_transaction_id
from shared.services import Services
from shared.usecases.dime_to_outlook.place_appointment import (
    DIME_TO_OUTLOOK,
    _remove,
    apply_publication,
    mailbox_for,
    resource_directory,
)

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
    unchanged: int = 0
    failed: int = 0
    held_back: dict[str, int] = field(default_factory=dict)  # mailbox → deletes the breaker refused


async def run_dime_reconcile(services: Services, only_emails: set[str] | None = None) -> DimeReconcileStats:
    """Converge Outlook to the planning board (every eligible resource, or those e-mails only)."""
    from shared.adapters.event_links_store import EventLinkStore

    stats = DimeReconcileStats()
    now = services.clock()
    s = services.settings
    start = (now - timedelta(days=s.sync_days_back)).astimezone(UTC)
    end = (now + timedelta(days=s.sync_days_forward)).astimezone(UTC)
    directory = await resource_directory(services, refresh=True)
    numbers: list[str] = []
    for resource in directory.values():
        if not (resource.exchange_enabled and resource.email):
            continue
        if only_emails is not None and resource.email not in only_emails:
            continue
        if await mailbox_for(services, resource.email) is not None:
            numbers.append(resource.resource_no)
    listed: dict[str, Publication] = {}
    present: set[str] = set()  # every appointment the listing carries, readable or not: none vanished
    unnamed = False  # an unreadable item without a GUID: which appointment it is, nobody knows
    zone = zone_named(s.dime_time_zone)
    for offset in range(0, len(numbers), RESOURCES_PER_REQUEST):
        chunk = numbers[offset : offset + RESOURCES_PER_REQUEST]
        document = await asyncio.to_thread(
            services.dime.list_appointments, _iso(start), _iso(end), chunk
        )  # a failure raises: nothing is deleted on a partial listing
        stats.requests += 1
        for item in items_of(document):
            try:
                pub = parse_publication(item, zone)
            except PublicationError as error:
                stats.unreadable += 1
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
    for pub in listed.values():
        try:
            # Through the worker's own entry: a permanent failure becomes a visible, retryable
            # failed transaction (as for a publication); a transient one raises.
            outcome = await apply_publication({"change": "updated", "publication": pub.to_message()}, services)
        except SyncError as error:
            stats.failed += 1
            log.warning("reconcile: appointment %s failed (%s); the next run tries again", pub.guid, error.code.value)
            continue
        if outcome.error is not None:
            stats.failed += 1
            continue
        for decision in outcome.decisions.values():
            if decision.action is Action.UPSERT:
                if decision.reason == "new":
                    stats.created += 1
                else:
                    stats.updated += 1
            elif decision.action is Action.DELETE:
                stats.deleted += 1
            else:
                stats.unchanged += 1
    # Vanished: linked events of the listed resources, in the window, whose appointment was not listed.
    store = EventLinkStore(services.store)
    links = await asyncio.to_thread(lambda: list(store.links()))
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
        candidates.clear()
    for mailbox, gone in candidates.items():
        verdict = check_deletes(len(gone), len(by_mailbox[mailbox]), share=s.delete_breaker_share)
        if not verdict.allowed:
            stats.held_back[mailbox] = len(gone)
            await asyncio.to_thread(_alert, services, mailbox, verdict.message, gone)
            continue
        for link in gone:
            try:
                await _remove(services, store, link, "appointment-vanished")
                stats.deleted += 1
            except SyncError as error:
                stats.failed += 1
                log.warning("reconcile: delete of %s failed (%s)", link.event_id, error.code.value)
    log.info("Dime.Scheduler reconcile: %s", stats)
    return stats


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _alert(services: Services, mailbox: str, message: str, gone: list[EventLink]) -> None:
    now = services.clock()
    services.store.add_transaction(
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
                "deletes": len(gone),
                "appointments": [g.appointment_guid for g in gone[:50]],
            },
        )
    )
