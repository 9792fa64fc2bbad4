"""Recurring series: a notification about a series master brings every instance to the board.

Graph notifies an edit of a series, or of one of its instances, on the series master only
(graph.md "Notifications"). So a master is expanded: its instances in the sync window
(`/events/{masterId}/instances`, full data) each go through `sync_event` and the usual decision
(an edited instance, an exception, is written once; an unchanged one costs nothing), and the
linked instances the listing no longer has (cancelled, or moved out by a new pattern), or all of
them when the series is deleted, are deleted through the circuit breaker. The master itself is
never on the board (`series-master`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shared.core.decision import Action, Decision
from shared.core.links import Link
from shared.core.outlook_to_dime.delta import Window
from shared.core.resources import Resource
from shared.services import Services
from shared.usecases.outlook_to_dime.breaker_alerts import guarded

log = logging.getLogger(__name__)

INSTANCE_CONCURRENCY = 8  # instances synchronised at once (tables and Dime.Scheduler only)


async def sync_series(
    services: Services, resource: Resource, master: dict[str, Any], *, prove_membership: bool = False
) -> Decision:
    """Expand a master over the sync window and synchronise each instance."""
    from shared.usecases.outlook_to_dime.sync_event import in_primary_calendar, sync_event

    settings, mailbox, master_id = services.settings, resource.object_id, str(master["id"])
    window = Window.around(services.clock(), settings.sync_days_back, settings.sync_days_forward)
    instances = await services.graph.list_instances(mailbox, master_id, window.iso())
    linked = await asyncio.to_thread(services.store.links_of_series, mailbox, master_id)
    # A series new to us: is it in the primary calendar (notifications cover every calendar)?
    new_series = prove_membership and not linked and instances
    if new_series and not await in_primary_calendar(services, mailbox, instances[0]):
        return Decision(Action.SKIP, "not-in-calendar")
    by_id = {link.event_id: link for link in linked}
    limit = asyncio.Semaphore(INSTANCE_CONCURRENCY)

    async def one(instance: dict[str, Any]) -> None:
        async with limit:
            event_id = str(instance["id"])
            await sync_event(services, resource, event_id, event_json=instance, link_read=by_id.get(event_id))

    listed = [i for i in instances if isinstance(i.get("id"), str)]
    results = await asyncio.gather(*(one(instance) for instance in listed), return_exceptions=True)
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:  # every instance had its turn; the message is delivered again (idempotent)
        raise failures[0]
    seen = {str(i["id"]) for i in listed}
    gone = [link for link in by_id.values() if link.event_id not in seen]
    if gone:
        await delete_instances(services, resource, master_id, gone)
    log.info("series %s of %s: %d instances in the window, %d gone", master_id[-12:], mailbox, len(listed), len(gone))
    return Decision(Action.SKIP, "series-master")


async def delete_instances(services: Services, resource: Resource, master_id: str, links: list[Link]) -> Decision:
    """Delete linked instances no longer in the series (or of a deleted series), as one set
    through the circuit breaker; a tripped breaker deletes nothing and records an alert."""
    from shared.usecases.outlook_to_dime.sync_event import sync_event

    verdict, _ = await guarded(services, resource.object_id, "series", links, payload={"seriesMasterId": master_id})
    if not verdict.allowed:
        return Decision(Action.SKIP, "breaker-tripped")
    for link in links:
        await sync_event(services, resource, link.event_id, deleted=True, link_read=link, breaker_passed=True)
    return Decision(Action.SKIP, "series-master")
