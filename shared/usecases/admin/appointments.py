"""One appointment (or one Outlook event) with everything the console shows on its page (issue 19).

GET {prefix}/appointments/{guid}?mailbox= and GET {prefix}/events?mailbox=&eventId=: the links in
both directions, each side's state as we last recorded it, and the timeline (every transaction of
it, newest first, with error and payload).

Reads, per page drawn (measured in tests/e2e/test_console_api.py):
* the appointment's `eventlinks` partition (one query: its state row and one row per mailbox its
  event was placed in), plus one point read of the Outlook-origin mark when it holds no event;
* per mailbox known (the `mailbox` hint the console passes, and those of `eventlinks`): its links
  and its transactions naming the GUID, one partition query each (a filter inside one partition);
* the `dime-scheduler` partition's transactions naming it (publications that failed before
  reaching a calendar), one partition query;
* the resources partition (names), one query.
Without any mailbox (an Outlook appointment opened by its GUID alone) the links and transactions
are a filtered scan across mailboxes: the answer says `scanned`, and the console always passes the
mailbox it came from.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from shared.adapters.storage.event_links_store import EventLinkStore
from shared.adapters.storage.transactions_store import INDEX_PREFIX, transaction_from_entity
from shared.core.api_format import iso_utc, unknown_params_reason
from shared.core.appointment_view import MAX_TIMELINE, board_side, timeline
from shared.core.dime_to_outlook.links import EventLink
from shared.core.ids import appointment_guid, encode_key
from shared.core.transaction_query import QueryError, is_key_safe
from shared.core.transactions import DIME_PARTITION, Transaction
from shared.names import LINKS_TABLE, TRANSACTIONS_TABLE
from shared.services import Services
from shared.usecases.admin.transactions import (
    FilterProblem,
    _error,
    _json,
    link_json,
    people_of,
    person_json,
    resolve_mailbox_filter,
    transaction_json,
)
from shared.usecases.http_answer import HttpAnswer

MAX_SCANNED = 5000  # rows a GUID-only scan reads at most (it is the fallback, not the rule)
MAX_EVENT_ID = 1024


async def appointment_detail(guid: str, params: Mapping[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/appointments/{guid}?mailbox=<object id or UPN>"""
    guid = (guid or "").strip().lower()
    try:
        if reason := unknown_params_reason(params, ("mailbox",)):
            raise QueryError(reason)
        if not is_key_safe(guid) or len(guid) > 100:
            raise QueryError("not an appointment GUID")
        mailbox = await _mailbox(services, params.get("mailbox"))
    except QueryError as error:
        return _error(400, str(error))
    except FilterProblem as problem:
        return _error(problem.status, str(problem))
    return _json(200, await asyncio.to_thread(_detail, services, guid, mailbox))


async def event_detail(params: Mapping[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/events?mailbox=&eventId=: the page of the appointment the event belongs to
    (its link's GUID; without a link, the GUID a transaction of it names, else the one an Outlook
    event of that mailbox gets), with `eventId` echoed so the console can point at it."""
    try:
        if reason := unknown_params_reason(params, ("mailbox", "eventId")):
            raise QueryError(reason)
        event_id = params.get("eventId") or ""
        if not event_id or len(event_id) > MAX_EVENT_ID:
            raise QueryError("eventId is required (an Outlook event id)")
        mailbox = await _mailbox(services, params.get("mailbox"))
        if mailbox is None:
            raise QueryError("mailbox is required (the event's mailbox object id or UPN)")
    except QueryError as error:
        return _error(400, str(error))
    except FilterProblem as problem:
        return _error(problem.status, str(problem))
    guid = await asyncio.to_thread(_guid_of_event, services, mailbox, event_id)
    body = await asyncio.to_thread(_detail, services, guid, mailbox)
    return _json(200, {**body, "eventId": event_id, "mailboxId": mailbox})


async def _mailbox(services: Services, value: str | None) -> str | None:
    mailbox = (value or "").strip().lower() or None
    if mailbox is not None and not is_key_safe(mailbox):
        raise QueryError("mailbox is not a valid mailbox id")
    return await resolve_mailbox_filter(services, mailbox)


def _guid_of_event(services: Services, mailbox: str, event_id: str) -> str:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        link = services.store.table(LINKS_TABLE).get_entity(mailbox, encode_key(event_id), select=["AppointmentGuid"])
        if link.get("AppointmentGuid"):
            return str(link["AppointmentGuid"])
    except ResourceNotFoundError:
        pass
    rows = services.store.table(TRANSACTIONS_TABLE).query_entities(
        "PartitionKey eq @pk and EventId eq @event",
        parameters={"pk": mailbox, "event": event_id},
        select=["AppointmentGuid"],
    )
    for row in itertools.islice(rows, 50):
        if row.get("AppointmentGuid"):
            return str(row["AppointmentGuid"])
    return appointment_guid(services.settings.graph_tenant_id, mailbox, event_id)


def _detail(services: Services, guid: str, hint: str | None) -> dict[str, Any]:
    state, placed = EventLinkStore(services.store).read(guid)
    mailboxes = sorted({m for m in (hint, *placed) if m})
    links_table = services.store.table(LINKS_TABLE)
    transactions_table = services.store.table(TRANSACTIONS_TABLE)
    parameters = {"guid": guid}
    if mailboxes:
        outlook = [
            e
            for m in mailboxes
            for e in links_table.query_entities(
                "PartitionKey eq @pk and AppointmentGuid eq @guid", parameters={**parameters, "pk": m}
            )
        ]
        rows: list[Any] = [
            e
            for m in mailboxes
            for e in transactions_table.query_entities(
                "PartitionKey eq @pk and AppointmentGuid eq @guid", parameters={**parameters, "pk": m}
            )
        ]
    else:
        outlook = list(
            itertools.islice(links_table.query_entities("AppointmentGuid eq @guid", parameters=parameters), 100)
        )
        scan = "PartitionKey lt @index and AppointmentGuid eq @guid"
        rows = list(
            itertools.islice(
                transactions_table.query_entities(scan, parameters={**parameters, "index": INDEX_PREFIX}), MAX_SCANNED
            )
        )
    if DIME_PARTITION not in mailboxes:
        rows += transactions_table.query_entities(
            "PartitionKey eq @pk and AppointmentGuid eq @guid", parameters={**parameters, "pk": DIME_PARTITION}
        )
    people = people_of(services)
    shown, more = timeline(_transactions(rows), MAX_TIMELINE)
    return {
        "appointmentGuid": guid,
        "outlookOrigin": bool(state and state.outlook_origin),
        "deleted": bool(state and state.deleted),
        "board": board_side(state.publication if state else None),
        "unmatched": [{"resource": r, "reason": why} for r, why in (state.unmatched if state else ())],
        "stateUpdatedAt": iso_utc(state.updated_at) if state else None,
        "placed": [_placed_json(link, people) for link in placed.values()],
        "links": [link_json(e, people) for e in outlook],
        "transactions": [transaction_json(t, detail=True, people=people) for t in shown],
        "more": more,
        "scanned": not mailboxes,
    }


def _transactions(rows: list[Any]) -> Iterator[Transaction]:
    for row in rows:
        yield transaction_from_entity(row)


def _placed_json(link: EventLink, people: Mapping[str, Any]) -> dict[str, Any]:
    """A Dime.Scheduler → Outlook pair: the event we placed in one mailbox, as we last wrote it."""
    return {
        "mailboxId": link.mailbox_id,
        "resource": link.resource,
        "resourceEmail": link.resource_email,
        "eventId": link.event_id,
        "subject": link.subject,
        "start": iso_utc(link.start),
        "syncedAt": iso_utc(link.synced_at),
        "dismissed": link.dismissed,
        "pending": link.pending is not None,
        **person_json(link.mailbox_id, (None, None), people),
    }
