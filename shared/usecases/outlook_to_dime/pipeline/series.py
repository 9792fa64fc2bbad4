"""Recurring series: a change of a series master brings every instance to the board.

Graph notifies an edit of a series, or of one of its instances, on the series master only
(graph.md "Notifications"). So a master is expanded: its instances in the sync window
(`/events/{masterId}/instances`, full data) are a batch of their own through the pipeline (an
edited instance, an exception, is written once; an unchanged one costs nothing), and the linked
instances the listing no longer has (cancelled, or moved out by a new pattern), or all of them
when the series is deleted, are deleted as one set through the circuit breaker. The master itself
is never on the board (`series-master`). The pipeline hands its own `run` in (no import cycle).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from shared.core.decision import Action, Decision
from shared.core.links import Link
from shared.core.outlook_to_dime.delta import Window
from shared.core.outlook_to_dime.triage import Change
from shared.core.resources import Resource
from shared.services import Services
from shared.usecases.calendar_proof import in_primary_calendar
from shared.usecases.outlook_to_dime.breaker_alerts import guarded
from shared.usecases.outlook_to_dime.pipeline.item import Outcome

log = logging.getLogger(__name__)

Run = Callable[..., Awaitable[list[Outcome]]]


def _raise_first(outcomes: Sequence[Outcome]) -> None:
    """Every instance had its turn; the first failure fails the master's change (delivered again:
    idempotent)."""
    for outcome in outcomes:
        if outcome.error is not None:
            raise outcome.error


async def expand_series(
    services: Services, resource: Resource, master: dict[str, Any], prove_new: bool, run: Run
) -> Decision:
    """Expand a master over the sync window and synchronise its instances as one batch."""
    settings, mailbox, master_id = services.settings, resource.object_id, str(master["id"])
    window = Window.around(services.clock(), settings.sync_days_back, settings.sync_days_forward)
    instances = await services.graph.list_instances(mailbox, master_id, window.iso())
    linked = await services.astore.links_of_series(mailbox, master_id)
    # A series new to us: is it in the primary calendar (notifications cover every calendar)?
    if prove_new and not linked and instances and not await in_primary_calendar(services, mailbox, instances[0]):
        return Decision(Action.SKIP, "not-in-calendar")
    by_id = {link.event_id: link for link in linked}
    listed = [i for i in instances if isinstance(i.get("id"), str)]
    changes = [
        Change(mailbox, str(i["id"]), event_json=i, link=by_id.get(str(i["id"])), link_known=str(i["id"]) in by_id)
        for i in listed
    ]
    _raise_first(await run(services, changes, resources={mailbox: resource}))
    seen = {str(i["id"]) for i in listed}
    gone = [link for link in by_id.values() if link.event_id not in seen]
    if gone:
        await series_gone(services, resource, master_id, gone, run)
    log.info("series %s of %s: %d instances in the window, %d gone", master_id[-12:], mailbox, len(listed), len(gone))
    return Decision(Action.SKIP, "series-master")


async def series_gone(services: Services, resource: Resource, master_id: str, links: list[Link], run: Run) -> Decision:
    """Delete linked instances no longer in the series (or of a deleted series), as one set
    through the circuit breaker; a tripped breaker deletes nothing and records an alert."""
    mailbox = resource.object_id
    verdict, _ = await guarded(services, mailbox, "series", links, payload={"seriesMasterId": master_id})
    if not verdict.allowed:
        return Decision(Action.SKIP, "breaker-tripped")
    changes = [
        Change(mailbox, link.event_id, gone=True, link=link, link_known=True, breaker_passed=True) for link in links
    ]
    _raise_first(await run(services, changes, resources={mailbox: resource}))
    return Decision(Action.SKIP, "series-master")
