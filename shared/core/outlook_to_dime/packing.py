"""One queue message per POST: Graph's notifications of one request travel together (pure).

Graph sends several notifications per POST, commonly three for one edit. One queue message per
notification costs each of them a put, a receive share and a delete, and makes the duplicates
race each other on different instances. Packed into one message (`{"changes": [...]}`, at most
`PACK_LIMIT` each), the worker folds the duplicates of one event into one change.
"""

from __future__ import annotations

from typing import Any

PACK_LIMIT = 50  # changes per message: ~250 bytes each, base64 grows it by 4/3, a message holds 64 KiB
PACKED_KEY = "changes"


def pack(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The queue messages for one POST's changes: a lone change stays a plain message."""
    if len(changes) <= 1:
        return changes
    return [{PACKED_KEY: changes[start : start + PACK_LIMIT]} for start in range(0, len(changes), PACK_LIMIT)]


def is_packed(message: dict[str, Any]) -> bool:
    return isinstance(message.get(PACKED_KEY), list)


def fold(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One change per event. Graph does not promise order, so when the duplicates announce
    different changeKeys none is trusted (Graph is read); a `deleted` among them stays a claim
    that the pipeline confirms with Graph either way."""
    by_event: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for change in changes:
        if isinstance(change, dict):
            by_event.setdefault((str(change.get("mailboxId")), str(change.get("eventId"))), []).append(change)
    folded = []
    for items in by_event.values():
        first = dict(items[0])
        keys = {item.get("changeKey") for item in items}
        first["changeKey"] = keys.pop() if len(keys) == 1 else None
        if any(item.get("changeType") == "deleted" for item in items):
            first["changeType"] = "deleted"
        first["subscriptionId"] = next((i["subscriptionId"] for i in items if i.get("subscriptionId")), "")
        folded.append(first)
    return folded
