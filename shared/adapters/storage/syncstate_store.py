"""The syncstate table: delta position, reconcile cursor and run records, one partition per mailbox.

Rows (PartitionKey = mailbox object id):
  "delta"            deltaLink / nextLink, round start, window, last run summary
  "delta-seen-NNN"   fingerprints of what a paused full listing has seen so far
  "reconcile"        cursor (last processed link RowKey) of an unfinished pass
  "delta-run"        what the last delta run did (read by the status view)
  "reconcile-run"    what the last reconcile run did
  "dime-reconcile-run"  (PartitionKey "~dime-scheduler") what the last Dime.Scheduler → Outlook reconcile did
  "retry-run", "renewal-run"  (PartitionKey "~dime-scheduler") what the last retry / renewal timer run did
  "delta-lease"      who runs delta for the mailbox until when (etag-conditional take)
  "tomb-<digest>"    an event deleted because it was gone (a late "updated" needs proof to revive it);
                     purged TOMBSTONE_RETENTION_DAYS after it was written (shared/core/retention.py)
  "webhook-deletes"  when notification-driven deletes happened in the last 10 minutes (for the breaker)
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters.storage.table_rows import delete_unchanged
from shared.core.links import Link
from shared.core.outlook_to_dime.delta import DeltaState, Window, digest, lease_free
from shared.core.runs import RunStats
from shared.names import LINKS_TABLE, SYNCSTATE_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore

DELTA_ROW = "delta"
SEEN_ROW_PREFIX = "delta-seen-"
RECONCILE_ROW = "reconcile"
RUN_ROW_SUFFIX = "-run"
LEASE_ROW = "delta-lease"
TOMBSTONE_PREFIX = "tomb-"
WEBHOOK_DELETES_ROW = "webhook-deletes"
WEBHOOK_DELETES_WINDOW = timedelta(minutes=10)
_CHUNK_CHARS = 30_000  # a string property holds 32K UTF-16 characters
_CHUNKS_PER_ROW = 12  # an entity holds at most 1 MiB


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return None


# Row mapping (shared by this store and the asynchronous one, shared/adapters/storage/aio_stores.py) ---


def delta_state_from(entity: dict[str, Any] | None) -> DeltaState:
    """The "delta" row as a DeltaState (no row: a mailbox that never ran)."""
    if entity is None:
        return DeltaState()
    start, end = _time(entity.get("WindowStart")), _time(entity.get("WindowEnd"))
    return DeltaState(
        delta_link=entity.get("DeltaLink") or None,
        next_link=entity.get("NextLink") or None,
        round_started_at=_time(entity.get("RoundStartedAt")),
        window=Window(start, end) if start and end else None,
        fresh=bool(entity.get("Fresh")),
    )


def delta_values(state: DeltaState, run: RunStats | None = None) -> dict[str, Any]:
    """The "delta" row's values (with the run's summary when given)."""
    values: dict[str, Any] = {
        "DeltaLink": state.delta_link or "",
        "NextLink": state.next_link or "",
        "RoundStartedAt": state.round_started_at.isoformat() if state.round_started_at else "",
        "WindowStart": state.window.start.isoformat() if state.window else "",
        "WindowEnd": state.window.end.isoformat() if state.window else "",
        "Fresh": state.fresh,
    }
    if run is not None:
        values.update(LastRunAt=run.started_at.isoformat(), LastOutcome=run.outcome, LastChanges=run.changes)
    return values


def lease_entity(mailbox_id: str, owner: str, expires_at: datetime | None) -> dict[str, Any]:
    """The "delta-lease" row: held by `owner` until `expires_at`, or given back (owner "")."""
    return {
        "PartitionKey": mailbox_id,
        "RowKey": LEASE_ROW,
        "Owner": owner,
        "ExpiresAt": expires_at.isoformat() if expires_at else "",
    }


def may_take_lease(entity: dict[str, Any] | None, owner: str, now: datetime) -> bool:
    """Whether the lease row as read may be taken by `owner` (`lease_free`; no row: free)."""
    if entity is None:
        return True
    return lease_free(str(entity.get("Owner") or ""), _time(entity.get("ExpiresAt")), owner, now)


def seen_rows(fingerprints: set[str]) -> list[dict[str, Any]]:
    """The "delta-seen-NNN" rows' values: comma-joined fingerprints, a string property per 30,000
    characters, 12 properties per row."""
    chunks: list[str] = []
    current = ""
    for fingerprint in sorted(fingerprints):
        if len(current) + len(fingerprint) + 1 > _CHUNK_CHARS:
            chunks.append(current)
            current = ""
        current = f"{current},{fingerprint}" if current else fingerprint
    if current:
        chunks.append(current)
    return [
        {f"Ids{i:02d}": chunk for i, chunk in enumerate(chunks[start : start + _CHUNKS_PER_ROW])}
        for start in range(0, len(chunks), _CHUNKS_PER_ROW)
    ]


def tombstone_row(event_id: str) -> str:
    """The RowKey of an event's tombstone (event ids may hold characters keys forbid: a digest)."""
    return TOMBSTONE_PREFIX + digest(event_id)


def tombstone_values(event_id: str, now: datetime) -> dict[str, Any]:
    return {"EventId": event_id, "DeletedAt": now.isoformat()}


def names_tombstone(entity: dict[str, Any] | None, event_id: str) -> bool:
    """The row read at `tombstone_row(event_id)` is that event's (a digest collision is not)."""
    return entity is not None and entity.get("EventId") == event_id


def tombstones_query(mailbox_id: str) -> tuple[str, dict[str, Any]]:
    """Every tombstone of a mailbox: one range query over its partition."""
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    return query, {"pk": mailbox_id, "low": TOMBSTONE_PREFIX, "high": TOMBSTONE_PREFIX[:-1] + chr(ord("-") + 1)}


def recent_deletes(entity: dict[str, Any] | None, now: datetime) -> list[str]:
    """The times (ISO) of the `webhook-deletes` row that fall in the last 10 minutes."""
    try:
        times = json.loads((entity or {}).get("Times") or "[]")
    except ValueError:
        times = []
    since = now - WEBHOOK_DELETES_WINDOW
    return [t for t in times if isinstance(t, str) and (_time(t) or since) > since]


def one_more_delete(recent: list[str], now: datetime) -> dict[str, Any]:
    """The `webhook-deletes` row's values with one more delete at `now` (the last 500 kept)."""
    return {"Times": json.dumps([*recent, now.isoformat()][-500:])}


class SyncStateStore:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    @property
    def _table(self) -> Any:
        return self._store.table(SYNCSTATE_TABLE)

    def _get(self, mailbox_id: str, row: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self._table.get_entity(mailbox_id, row))
        except ResourceNotFoundError:
            return None

    def _put(self, mailbox_id: str, row: str, values: dict[str, Any]) -> None:
        from azure.data.tables import UpdateMode

        self._table.upsert_entity({"PartitionKey": mailbox_id, "RowKey": row, **values}, mode=UpdateMode.REPLACE)

    def _delete(self, mailbox_id: str, row: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(mailbox_id, row)

    # Delta ---------------------------------------------------------------------------------

    def delta_state(self, mailbox_id: str) -> DeltaState:
        return delta_state_from(self._get(mailbox_id, DELTA_ROW))

    def save_delta_state(self, mailbox_id: str, state: DeltaState, run: RunStats | None = None) -> None:
        self._put(mailbox_id, DELTA_ROW, delta_values(state, run))

    def seen(self, mailbox_id: str) -> set[str]:
        """Fingerprints a paused full listing has seen (empty when none was paused)."""
        seen: set[str] = set()
        for entity in self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": mailbox_id, "lo": SEEN_ROW_PREFIX, "hi": SEEN_ROW_PREFIX + "~"},
        ):
            for key, value in entity.items():
                if key.startswith("Ids") and value:
                    seen.update(value.split(","))
        return seen

    def save_seen(self, mailbox_id: str, fingerprints: set[str]) -> None:
        self.clear_seen(mailbox_id)
        for row, values in enumerate(seen_rows(fingerprints)):
            self._put(mailbox_id, f"{SEEN_ROW_PREFIX}{row:03d}", values)

    def clear_seen(self, mailbox_id: str) -> None:
        for entity in self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": mailbox_id, "lo": SEEN_ROW_PREFIX, "hi": SEEN_ROW_PREFIX + "~"},
            select=["PartitionKey", "RowKey"],
        ):
            self._delete(mailbox_id, entity["RowKey"])

    # Reconcile -----------------------------------------------------------------------------

    def reconcile_cursor(self, mailbox_id: str) -> str | None:
        entity = self._get(mailbox_id, RECONCILE_ROW)
        return (entity or {}).get("Cursor") or None

    def save_reconcile_cursor(self, mailbox_id: str, cursor: str | None, now: datetime) -> None:
        values: dict[str, Any] = {"Cursor": cursor or "", "UpdatedAt": now.isoformat()}
        if cursor is None:
            values["PassCompletedAt"] = now.isoformat()
        self._put(mailbox_id, RECONCILE_ROW, values)

    def restart_reconcile(self, mailbox_id: str, now: datetime) -> None:
        """The next reconcile pass of the mailbox starts from its first link (a disabled mailbox)."""
        self._put(mailbox_id, RECONCILE_ROW, {"Cursor": "", "UpdatedAt": now.isoformat()})

    # Links, read in key order --------------------------------------------------------------

    def links_after(self, mailbox_id: str, cursor: str | None) -> Iterator[tuple[str, Link]]:
        """(RowKey, link) of a mailbox's links with RowKey > cursor, in key order (paged lazily)."""
        from shared.adapters.storage.tables import _link_from_entity

        if cursor:
            query, parameters = "PartitionKey eq @pk and RowKey gt @rk", {"pk": mailbox_id, "rk": cursor}
        else:
            query, parameters = "PartitionKey eq @pk", {"pk": mailbox_id}
        for entity in self._store.table(LINKS_TABLE).query_entities(query, parameters=parameters):
            yield entity["RowKey"], _link_from_entity(entity)

    def count_links(self, mailbox_id: str) -> int:
        return sum(
            1
            for _ in self._store.table(LINKS_TABLE).query_entities(
                "PartitionKey eq @pk", parameters={"pk": mailbox_id}, select=["RowKey"]
            )
        )

    # Delta lease ---------------------------------------------------------------------------

    def take_lease(self, mailbox_id: str, owner: str, now: datetime, duration: timedelta) -> bool:
        """Take the mailbox's delta lease unless another owner holds an unexpired one.

        Etag-conditional (insert, or replace the row as read), so two processes racing for it
        cannot both win: Outlook keeps few sync-state generations, and two runs following links of
        the same mailbox at once invalidate each other (https://learn.microsoft.com/graph/delta-query-events;
        docs/verification.md)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = lease_entity(mailbox_id, owner, now + duration)
        try:
            current = self._table.get_entity(mailbox_id, LEASE_ROW)
        except ResourceNotFoundError:
            try:
                self._table.create_entity(entity)
                return True
            except ResourceExistsError:
                return False
        if not may_take_lease(current, owner, now):
            return False
        try:
            self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def release_lease(self, mailbox_id: str, owner: str) -> None:
        """Give the lease back (only when still ours; an expired-and-taken lease is someone else's)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            current = self._table.get_entity(mailbox_id, LEASE_ROW)
            if current.get("Owner") != owner:
                return
            self._table.update_entity(
                lease_entity(mailbox_id, "", None),
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return

    # Tombstones and notification-driven deletes --------------------------------------------

    def add_tombstone(self, mailbox_id: str, event_id: str, now: datetime) -> None:
        self._put(mailbox_id, tombstone_row(event_id), tombstone_values(event_id, now))

    def is_tombstoned(self, mailbox_id: str, event_id: str) -> bool:
        return names_tombstone(self._get(mailbox_id, tombstone_row(event_id)), event_id)

    def tombstoned_events(self, mailbox_id: str) -> set[str]:
        """The event ids of every tombstone of the mailbox: one range query (a batch of new events
        asks once instead of once per event)."""
        query, parameters = tombstones_query(mailbox_id)
        rows = self._table.query_entities(query, parameters=parameters, select=["EventId"])
        return {str(row.get("EventId") or "") for row in rows}

    def remove_tombstone(self, mailbox_id: str, event_id: str) -> None:
        self._delete(mailbox_id, tombstone_row(event_id))

    def expired_tombstones(self, before: datetime, limit: int) -> list[Any]:
        """Up to `limit` tombstones of any mailbox last written before `before` (keys and etags):
        one filtered query over the table, paged by the service."""
        query = "RowKey ge @low and RowKey lt @high and Timestamp lt @before"
        parameters = {"low": TOMBSTONE_PREFIX, "high": TOMBSTONE_PREFIX[:-1] + chr(ord("-") + 1), "before": before}
        rows = self._table.query_entities(query, parameters=parameters, select=["PartitionKey", "RowKey"])
        return list(itertools.islice(rows, limit))

    def delete_rows(self, rows: list[Any]) -> tuple[int, int]:
        return delete_unchanged(self._table, rows)

    def recent_webhook_deletes(self, mailbox_id: str, now: datetime) -> list[str]:
        """Times (ISO) of the notification-driven deletes of the last 10 minutes."""
        return recent_deletes(self._get(mailbox_id, WEBHOOK_DELETES_ROW), now)

    def note_webhook_delete(self, mailbox_id: str, now: datetime) -> None:
        """Remember one more delete (last writer wins: concurrent deletes may be undercounted)."""
        self._put(mailbox_id, WEBHOOK_DELETES_ROW, one_more_delete(self.recent_webhook_deletes(mailbox_id, now), now))

    # Run records ---------------------------------------------------------------------------

    def save_run(self, run: RunStats) -> None:
        self._put(run.mailbox_id, run.kind + RUN_ROW_SUFFIX, run_values(run))

    def run(self, mailbox_id: str, kind: str) -> dict[str, Any] | None:
        return self._get(mailbox_id, kind + RUN_ROW_SUFFIX)


def run_values(run: RunStats) -> dict[str, Any]:
    """A run record's row (RowKey: its kind + RUN_ROW_SUFFIX, in the run's mailbox partition)."""
    values = asdict(run)
    dime = {} if run.dime_requests is None else {"DimeRequests": run.dime_requests}
    return {
        **dime,
        "Kind": run.kind,
        "StartedAt": run.started_at.isoformat(),
        "Reason": run.reason,
        "Outcome": run.outcome,
        "Round": run.round,
        "Changes": run.changes,
        "Writes": run.writes,
        "Deletes": run.deletes,
        "Healed": run.healed,
        "Skipped": run.skipped,
        "Errors": run.errors,
        "GraphRequests": run.graph_requests,
        "DurationMs": run.duration_ms,
        "LastError": run.last_error,
        "Breaker": run.breaker,
        "ErrorMessages": "\n".join(values["error_messages"])[:30_000],
    }
