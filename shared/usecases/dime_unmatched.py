"""`GET /api/manage/unmatched`: what could not be matched between the planning board and Outlook.

The page the official connector offers as "events that could not be matched": Outlook events this
app wrote whose appointment no longer exists (a delete that has not gone through yet, or one the
circuit breaker held back), and assigned resources whose appointment could not reach a calendar
(no e-mail, Exchange integration off, unknown to Dime.Scheduler, no mailbox), each with the reason.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared.services import Services
from shared.usecases.webhook import HttpAnswer

MAX_ROWS = 1000


async def unmatched(services: Services) -> HttpAnswer:
    from shared.adapters.event_links_store import EventLinkStore

    store = EventLinkStore(services.store)
    states = {s.guid: s for s in await asyncio.to_thread(lambda: list(store.states()))}
    links = await asyncio.to_thread(lambda: list(store.links()))
    events: list[dict[str, Any]] = []
    for link in links:
        if link.event_id is None:
            continue
        state = states.get(link.appointment_guid)
        reason = None
        if state is None or state.publication is None:
            reason = "appointment-unknown"
        elif state.deleted:
            reason = "appointment-deleted"
        if reason:
            events.append(
                {
                    "mailboxId": link.mailbox_id,
                    "eventId": link.event_id,
                    "appointmentGuid": link.appointment_guid,
                    "resource": link.resource,
                    "start": link.start,
                    "reason": reason,
                }
            )
    assignments: list[dict[str, Any]] = []
    for state in states.values():
        if state.deleted or not state.unmatched:
            continue
        publication = state.publication or {}
        for resource, reason in state.unmatched:
            assignments.append(
                {
                    "appointmentGuid": state.guid,
                    "appointmentNo": publication.get("appointment_no"),
                    "subject": publication.get("subject"),
                    "start": publication.get("start"),
                    "resource": resource,
                    "reason": reason,
                }
            )
    body = {
        "events": events[:MAX_ROWS],
        "assignments": sorted(assignments, key=lambda a: (a["start"] or "", a["resource"]))[:MAX_ROWS],
        "truncated": len(events) > MAX_ROWS or len(assignments) > MAX_ROWS,
    }
    return HttpAnswer(200, json.dumps(body), "application/json; charset=utf-8")
