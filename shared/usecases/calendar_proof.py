"""The proof a GET 200 cannot give: whether the primary calendar lists an event over its own time
range (a deleted event may still answer GET; a notification covers every calendar). Both directions
ask it: Outlook → Dime.Scheduler for events new to us and claimed deletes, Dime.Scheduler → Outlook
for a patched event. Many at once: `GraphBatches.prove_listed` (calendarView members of a $batch)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.core.events import EventFormatError, parse_graph_time
from shared.services import Services


def proof_range(event_json: dict[str, Any]) -> tuple[str, str] | None:
    """The calendarView range (ISO start, end) that must list the event: its own times, a day
    either side, so all-day events and zones cannot make it miss; None without readable times."""
    from shared.core.outlook_to_dime.delta import format_graph_time

    try:
        all_day = bool(event_json.get("isAllDay"))
        start = parse_graph_time(event_json.get("start"), all_day=all_day) - timedelta(days=1)
        end = parse_graph_time(event_json.get("end"), all_day=all_day) + timedelta(days=1)
    except EventFormatError:
        return None
    return format_graph_time(start), format_graph_time(end)


async def in_primary_calendar(services: Services, mailbox_id: str, event_json: dict[str, Any]) -> bool:
    """Whether the primary calendar lists the event over its own time range: the proof a GET
    200 cannot give (`GraphBatches.prove_listed` asks it for many at once)."""
    where = proof_range(event_json)
    if where is None:
        return False
    return await services.graph.in_primary_calendar(mailbox_id, str(event_json.get("id") or ""), *where)
