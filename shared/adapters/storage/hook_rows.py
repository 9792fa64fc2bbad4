"""The `dimehooks` table: the Dime.Scheduler webhooks this app registered (to remove them again).

PartitionKey = source app, RowKey = hook type (AppointmentCreated/Updated/Deleted). Besides the hook
id and the URL without its query (never the key), a row remembers `MadeWith`, the fingerprint of
the keyed URL the hook was registered with (core hook_fingerprint: an HMAC prefix, never the key),
as subscription rows do: a hook whose fingerprint is not the current one is re-registered. While a
replaced hook could not yet be removed from Dime.Scheduler, its id waits in `PreviousHookId`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.names import HOOKS_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore


@dataclass(frozen=True)
class HookRow:
    source_app: str
    type: str
    hook_id: str
    url: str  # without its query: the key is never stored
    created_at: str
    made_with: str = ""  # hook_fingerprint() of the keyed URL; "" = unknown (made before fingerprints)
    previous_hook_id: str = ""  # a replaced hook still to delete at Dime.Scheduler

    def shown(self) -> dict[str, Any]:
        """What the management API lists (no fingerprint: it is of no use to a reader)."""
        return {
            "sourceApp": self.source_app,
            "type": self.type,
            "hookId": self.hook_id,
            "url": self.url,
            "createdAt": self.created_at,
        }


def hook_rows(store: StateStore) -> list[HookRow]:
    return [
        HookRow(
            e["PartitionKey"],
            e["RowKey"],
            e.get("HookId", ""),
            e.get("Url", ""),
            e.get("CreatedAt", ""),
            e.get("MadeWith", ""),
            e.get("PreviousHookId", ""),
        )
        for e in store.table(HOOKS_TABLE).query_entities("")
    ]


def list_hooks(store: StateStore) -> list[dict[str, Any]]:
    return [row.shown() for row in hook_rows(store)]


def save_hook_row(store: StateStore, row: HookRow) -> None:
    from azure.data.tables import UpdateMode

    entity = {
        "PartitionKey": row.source_app,
        "RowKey": row.type,
        "HookId": row.hook_id,
        "Url": row.url,
        "CreatedAt": row.created_at,
        "MadeWith": row.made_with,
        "PreviousHookId": row.previous_hook_id,
    }
    store.table(HOOKS_TABLE).upsert_entity(entity, mode=UpdateMode.REPLACE)


def save_hook(store: StateStore, source_app: str, hook_type: str, hook_id: str, url: str, created_at: str) -> None:
    save_hook_row(store, HookRow(source_app, hook_type, hook_id, url, created_at))


def delete_hook_row(store: StateStore, source_app: str, hook_type: str) -> None:
    store.table(HOOKS_TABLE).delete_entity(source_app, hook_type)
