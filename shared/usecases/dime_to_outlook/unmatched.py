"""`GET /api/manage/unmatched`: what could not be matched between the planning board and Outlook.

`{"items": [{kind, reason, resource, subject, start, appointmentGuid, mailboxId, eventId}],
"truncated"}`, kind `outlook-event` or `assignment` (the console's Unmatched page lists them).

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
from shared.usecases.http_answer import HttpAnswer

MAX_ROWS = 1000


async def unmatched(services: Services) -> HttpAnswer:
    store = services.astore.eventlinks
    states, links = await asyncio.gather(store.states(), store.links())
    states = {s.guid: s for s in states}
    items: list[dict[str, Any]] = []
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
            subject = (state.publication or {}).get("subject") if state else None
            items.append(_item("outlook-event", reason, link.resource, subject, link.start, link.appointment_guid,
                               link.mailbox_id, link.event_id))  # fmt: skip
    for state in states.values():
        if state.deleted or not state.unmatched:
            continue
        publication = state.publication or {}
        for resource, reason in state.unmatched:
            items.append(_item("assignment", reason, resource, publication.get("subject"), publication.get("start"),
                               state.guid, None, None))  # fmt: skip
    items.sort(key=lambda i: (i["kind"], i["start"] or "", i["resource"]))
    body = {"items": items[:MAX_ROWS], "truncated": len(items) > MAX_ROWS}
    return HttpAnswer(200, json.dumps(body), "application/json; charset=utf-8")


def _item(
    kind: str,
    reason: str,
    resource: str,
    subject: str | None,
    start: str | None,
    guid: str,
    mailbox: str | None,
    event_id: str | None,
) -> dict[str, Any]:
    """One row, the same fields for both kinds (the console shows them as one table)."""
    return {
        "kind": kind,
        "reason": reason,
        "resource": resource,
        "subject": subject,
        "start": start,
        "appointmentGuid": guid,
        "mailboxId": mailbox,
        "eventId": event_id,
    }
