"""A page of events new to us, in a few requests: one `/import`, one table batch of links, one of
success transactions (onboarding a mailbox lists thousands of events nobody has synchronised yet).
A packed message's new events of several mailboxes share the `/import`; the tombstone query, link
batch and transactions stay per mailbox (its table partition).

Only the plain case is batched: an event read in full, not a series master, never linked, never
deleted by us before (no tombstone) and not one this app wrote for a planner appointment (tagged:
its link may not be saved yet). Everything else, and every event of a batch whose import or link
batch failed, goes through `sync_event` one by one, which decides again from what is stored
then (a link another instance wrote meanwhile included), records a permanent failure as that
event's own failed transaction and raises a transient one. Dime.Scheduler applies an import's calls
all or nothing (its answer names the failing call), so one bad event costs the page one import
more, and the other events still reach the board.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.core.decision import Action, Decision, decide
from shared.core.events import EventFormatError, event_from_graph, missing_fields
from shared.core.ids import appointment_guid
from shared.core.links import OUTLOOK_ORIGIN, Link
from shared.core.outlook_to_dime.appointments import appointment_for, appointment_id_of, upsert_call
from shared.core.resources import Resource
from shared.core.shown import described, on_board, shown_of
from shared.core.transactions import Status, SyncError, Transaction, new_transaction_id
from shared.services import Services
from shared.usecases.outlook_to_dime.breaker_alerts import OUTLOOK_TO_DIME

log = logging.getLogger(__name__)

BATCH_LIMIT = 100  # calls per /import and operations per table transaction


@dataclass
class PageOutcome:
    """Decisions taken for the batched events, and the events left for `sync_event` one by one."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    one_by_one: list[str] = field(default_factory=list)


async def sync_new_events(
    services: Services,
    resource: Resource,
    events: list[dict[str, Any]],
    *,
    successes: list[Transaction] | None = None,
) -> PageOutcome:
    """One mailbox's new events (a delta or backfill page): `sync_new_events_of`."""
    outcomes = await sync_new_events_of(services, [(resource, events)], successes=successes)
    return outcomes[resource.object_id]


async def sync_new_events_of(
    services: Services,
    pages: list[tuple[Resource, list[dict[str, Any]]]],
    *,
    successes: list[Transaction] | None = None,
) -> dict[str, PageOutcome]:
    """Decide each new event of one or more mailboxes (a packed message spans several); write the
    upserts of all of them with one import per 100 (an import takes calls of any resources,
    dimescheduler.md), and per mailbox their links and success transactions with one table batch
    each (a mailbox is a partition; or into `successes`, which the caller writes in its own batch).
    The outcome per mailbox id; see the module docstring for what is left to `sync_event`."""
    from shared.usecases.outlook_to_dime.sync_event import state_store

    outcomes = {resource.object_id: PageOutcome() for resource, _ in pages}
    pages = [(resource, events) for resource, events in pages if events]
    if not pages:
        return outcomes
    store = state_store(services)
    tombstones = await asyncio.gather(
        *(asyncio.to_thread(store.tombstoned_events, resource.object_id) for resource, _ in pages)
    )
    now = services.clock()
    writes: list[tuple[Link, dict[str, Any]]] = []
    people = {resource.object_id: resource for resource, _ in pages}
    for (resource, events), tombstoned in zip(pages, tombstones, strict=True):
        writes += _decide(services, resource, events, tombstoned, now, outcomes[resource.object_id])
    for start in range(0, len(writes), BATCH_LIMIT):
        chunk = writes[start : start + BATCH_LIMIT]
        written = await _write_chunk(services, chunk, now.isoformat(), successes, people)
        for link, _ in chunk:
            if (link.mailbox_id, link.event_id) not in written:
                outcome = outcomes[link.mailbox_id]
                outcome.decisions.pop(link.event_id, None)
                outcome.one_by_one.append(link.event_id)
    return outcomes


def _decide(
    services: Services,
    resource: Resource,
    events: list[dict[str, Any]],
    tombstoned: set[str],
    now: datetime,
    outcome: PageOutcome,
) -> list[tuple[Link, dict[str, Any]]]:
    """One mailbox's decisions (into `outcome`), and the link and import call of each upsert."""
    settings = services.settings
    window = (now - timedelta(days=settings.sync_days_back), now + timedelta(days=settings.sync_days_forward))
    writes: list[tuple[Link, dict[str, Any]]] = []
    for event_json in events:
        event_id = str(event_json.get("id") or "")
        if missing_fields(event_json) or event_json.get("type") == "seriesMaster" or event_id in tombstoned:
            outcome.one_by_one.append(event_id)
            continue
        try:
            event = event_from_graph(event_json)
        except EventFormatError:
            outcome.one_by_one.append(event_id)  # sync_event records it as a failure of its own
            continue
        if event.planner_tag:
            outcome.one_by_one.append(event_id)  # ours (D→O), its link not saved yet: never imported
            continue
        guid = appointment_guid(settings.graph_tenant_id, resource.object_id, event_id)
        appointment = appointment_for(
            event, guid, resource.email, private_details=settings.sync_private_details, zone=settings.dime_zone
        )
        content_hash = appointment.content_hash()
        decision = decide(event, None, resource.consent, window, content_hash)
        outcome.decisions[event_id] = decision
        if decision.action is not Action.UPSERT:
            continue  # not linked: a refusal costs nothing
        shown = on_board(appointment)  # the board's subject (masked for a private event)
        link = Link(
            mailbox_id=resource.object_id,
            event_id=event_id,
            appointment_guid=guid,
            origin=OUTLOOK_ORIGIN,
            change_key=event.change_key,
            content_hash=content_hash,
            resource_email=resource.email,
            synced_at=now.isoformat(),
            series_master_id=event.series_master_id,
            kept_values=appointment.kept_values(),
            subject=shown.subject,
            start=shown.start,
        )
        writes.append((link, upsert_call(appointment)))
    return writes


async def _write_chunk(
    services: Services,
    chunk: list[tuple[Link, dict[str, Any]]],
    now: str,
    successes: list[Transaction] | None,
    people: dict[str, Resource] | None = None,
) -> set[tuple[str, str]]:
    """One import, one batch of links per mailbox, one of transactions; the (mailbox, event id)
    fully written. A mailbox whose link batch met a link written meanwhile loses only its own."""
    from shared.adapters.storage.event_links_store import EventLinkStore
    from shared.adapters.storage.transactions_store import transaction_store

    # Before Dime.Scheduler may publish them (as sync_event does): these appointments are never
    # written back to Outlook as a second event.
    origins = EventLinkStore(services.store)
    await asyncio.to_thread(origins.mark_outlook_origins, [link.appointment_guid for link, _ in chunk])
    try:
        answer = await asyncio.to_thread(services.dime.run_import, [call for _, call in chunk])
    except SyncError as error:
        log.info("a batched import of %d events failed (%s): one by one", len(chunk), error)
        return set()
    by_mailbox: dict[str, list[Link]] = {}
    for link, _ in chunk:
        by_mailbox.setdefault(link.mailbox_id, []).append(
            replace(link, appointment_id=appointment_id_of(answer or {}, link.appointment_guid))
        )
    inserted = await asyncio.gather(*(_insert_links(services, links) for links in by_mailbox.values()))
    links = [link for batch in inserted for link in batch]
    transactions = [
        described(
            Transaction(
                id=new_transaction_id(services.clock()),
                mailbox_id=link.mailbox_id,
                direction=OUTLOOK_TO_DIME,
                operation=Action.UPSERT.value,
                status=Status.SUCCEEDED,
                created_at=now,
                event_id=link.event_id,
                appointment_guid=link.appointment_guid,
                reason="new",
            ),
            shown_of(link),
            (people or {}).get(link.mailbox_id),
        )
        for link in links
    ]
    if successes is not None:
        successes.extend(transactions)
    elif transactions:
        await asyncio.to_thread(transaction_store(services).add_many, transactions)
    return {(link.mailbox_id, link.event_id) for link in links}


async def _insert_links(services: Services, links: list[Link]) -> list[Link]:
    """One mailbox's links in one table batch; none when one of them exists already."""
    from shared.adapters.storage.tables import ConcurrentUpdate

    try:
        await asyncio.to_thread(services.store.insert_links, links)
    except ConcurrentUpdate:
        # Another instance linked one of them meanwhile: sync_event decides each against what is stored.
        log.info("a batch of %d links met a link written meanwhile: one by one", len(links))
        return []
    return links
