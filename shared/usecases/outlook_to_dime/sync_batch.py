"""A page of events new to us, in a few requests: one `/import`, one table batch of links, one of
success transactions (onboarding a mailbox lists thousands of events nobody has synchronised yet).

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
from datetime import timedelta
from typing import Any

from shared.core.decision import Action, Decision, decide
from shared.core.events import EventFormatError, event_from_graph, missing_fields
from shared.core.ids import appointment_guid
from shared.core.links import OUTLOOK_ORIGIN, Link
from shared.core.outlook_to_dime.appointments import appointment_for, appointment_id_of, upsert_call
from shared.core.resources import Resource
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
    """Decide each new event; write the upserts with one import per 100 and their links and
    success transactions with one table batch each (or into `successes`, which the caller
    writes in its own batch). See the module docstring for what is left to `sync_event`
    (returned in `one_by_one`)."""
    from shared.usecases.outlook_to_dime.sync_event import state_store

    outcome = PageOutcome()
    if not events:
        return outcome
    tombstoned = await asyncio.to_thread(state_store(services).tombstoned_events, resource.object_id)
    settings, now = services.settings, services.clock()
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
        appointment = appointment_for(event, guid, resource.email, private_details=settings.sync_private_details)
        content_hash = appointment.content_hash()
        decision = decide(event, None, resource.consent, window, content_hash)
        outcome.decisions[event_id] = decision
        if decision.action is not Action.UPSERT:
            continue  # not linked: a refusal costs nothing
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
        )
        writes.append((link, upsert_call(appointment)))
    for start in range(0, len(writes), BATCH_LIMIT):
        chunk = writes[start : start + BATCH_LIMIT]
        written = await _write_chunk(services, resource, chunk, now.isoformat(), successes)
        for link, _ in chunk:
            if link.event_id not in written:
                outcome.decisions.pop(link.event_id, None)
                outcome.one_by_one.append(link.event_id)
    return outcome


async def _write_chunk(
    services: Services,
    resource: Resource,
    chunk: list[tuple[Link, dict[str, Any]]],
    now: str,
    successes: list[Transaction] | None,
) -> set[str]:
    """One import, one batch of links, one of transactions; the event ids fully written."""
    from shared.adapters.event_links_store import EventLinkStore
    from shared.adapters.tables import ConcurrentUpdate
    from shared.adapters.transactions_store import transaction_store

    # Before Dime.Scheduler may publish them (as sync_event does): these appointments are never
    # written back to Outlook as a second event.
    origins = EventLinkStore(services.store)
    await asyncio.to_thread(origins.mark_outlook_origins, [link.appointment_guid for link, _ in chunk])
    try:
        answer = await asyncio.to_thread(services.dime.run_import, [call for _, call in chunk])
    except SyncError as error:
        log.info("a batched import of %d events failed (%s): one by one", len(chunk), error)
        return set()
    links = [replace(link, appointment_id=appointment_id_of(answer or {}, link.appointment_guid)) for link, _ in chunk]
    try:
        await asyncio.to_thread(services.store.insert_links, links)
    except ConcurrentUpdate:
        # Another instance linked one of them meanwhile: sync_event decides each against what is stored.
        log.info("a batch of %d links met a link written meanwhile: one by one", len(links))
        return set()
    transactions = [
        Transaction(
            id=new_transaction_id(services.clock()),
            mailbox_id=resource.object_id,
            direction=OUTLOOK_TO_DIME,
            operation=Action.UPSERT.value,
            status=Status.SUCCEEDED,
            created_at=now,
            event_id=link.event_id,
            appointment_guid=link.appointment_guid,
            reason="new",
        )
        for link in links
    ]
    if successes is not None:
        successes.extend(transactions)
    else:
        await asyncio.to_thread(transaction_store(services).add_many, transactions)
    return {link.event_id for link in links}
