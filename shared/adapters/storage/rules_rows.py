"""The `rules` table: the rule set, one row, saved whole and conditionally.

A rule set is read and saved as one unit (an administrator edits the list, the preview compares
two whole lists), so it is one entity: PartitionKey `rules`, RowKey `current`, the JSON split over
`Json0`, `Json1`, … (a table property holds at most 64 KiB; an entity 1 MiB). Saving is
etag-conditional: two administrators saving at once cannot silently overwrite each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.adapters.storage.table_rows import ConcurrentUpdate, conditional
from shared.names import RULES_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore

PARTITION, ROW = "rules", "current"
CHUNK = 30_000  # characters per property (UTF-16 in the service: 60 KB of its 64 KiB)
MAX_CHUNKS = 15  # 450,000 characters: far beyond 200 rules


class RulesTooLarge(ValueError):
    """The rule set does not fit one row."""


@dataclass(frozen=True)
class StoredRules:
    document: list[Any]  # the rules as JSON (read_rules turns them into values)
    version: str | None  # the row's etag; None when no rule set was ever saved
    updated_at: str | None = None
    updated_by: str | None = None


def read_rules_row(store: StateStore) -> StoredRules:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        entity = store.table(RULES_TABLE).get_entity(PARTITION, ROW)
    except ResourceNotFoundError:
        return StoredRules([], None)
    text = "".join(str(entity.get(f"Json{n}", "")) for n in range(int(entity.get("Chunks", 0))))
    document = json.loads(text) if text else []
    if not isinstance(document, list):
        raise ValueError("the stored rule set is not a list")
    return StoredRules(document, entity.metadata["etag"], entity.get("UpdatedAt"), entity.get("UpdatedBy"))


def save_rules_row(store: StateStore, document: list[Any], version: str | None, updated_at: str, by: str) -> str:
    """Replace the rule set if it is still `version` (None: none saved yet); the new version.

    ConcurrentUpdate when someone saved meanwhile."""
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    if len(chunks) > MAX_CHUNKS:
        raise RulesTooLarge(f"the rule set is {len(text)} characters; at most {CHUNK * MAX_CHUNKS}")
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": ROW,
        "Chunks": len(chunks),
        "UpdatedAt": updated_at,
        "UpdatedBy": by[:200],
        **{f"Json{n}": chunk for n, chunk in enumerate(chunks)},
    }
    table = store.table(RULES_TABLE)
    try:
        if version is None:
            answer = table.create_entity(entity)
        else:
            answer = table.update_entity(entity, mode=UpdateMode.REPLACE, **conditional(version))
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        raise ConcurrentUpdate("the rule set was saved by someone else meanwhile") from None
    return str(answer["etag"])
