"""The `dimehooks` table: the Dime.Scheduler webhooks this app registered (to remove them again).

PartitionKey = source app, RowKey = hook type (AppointmentCreated/Updated/Deleted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.names import HOOKS_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore


def list_hooks(store: StateStore) -> list[dict[str, Any]]:
    return [
        {
            "sourceApp": e["PartitionKey"],
            "type": e["RowKey"],
            "hookId": e.get("HookId", ""),
            "url": e.get("Url", ""),
            "createdAt": e.get("CreatedAt", ""),
        }
        for e in store.table(HOOKS_TABLE).query_entities("")
    ]


def save_hook(store: StateStore, source_app: str, hook_type: str, hook_id: str, url: str, created_at: str) -> None:
    from azure.data.tables import UpdateMode

    entity = {"PartitionKey": source_app, "RowKey": hook_type, "HookId": hook_id, "Url": url, "CreatedAt": created_at}
    store.table(HOOKS_TABLE).upsert_entity(entity, mode=UpdateMode.REPLACE)


def delete_hook_row(store: StateStore, source_app: str, hook_type: str) -> None:
    store.table(HOOKS_TABLE).delete_entity(source_app, hook_type)
