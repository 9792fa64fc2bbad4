"""The `eventlinks` table: Dime.Scheduler → Outlook state, one partition per appointment.

PartitionKey = appointment GUID; RowKey `~appointment` holds the `AppointmentState` (last applied
publication, LastModifiedDate, tombstone, Outlook origin, unmatched resources), and one row per
mailbox (RowKey = mailbox object id) holds its `EventLink`. Everything about one appointment is
therefore one partition query. Writes are etag-conditional (ConcurrentUpdate on a lost race).
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.adapters.storage.tables import ConcurrentUpdate, _conditional
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.names import EVENT_LINKS_TABLE

if TYPE_CHECKING:
    from shared.adapters.storage.tables import StateStore

STATE_ROW = "~appointment"
ORIGIN_PREFIX = "~outlook-origin-"  # + shard; RowKey: the GUID of an appointment the other direction made
ORIGIN_SHARDS = 4
_MARKERS = ThreadPoolExecutor(max_workers=ORIGIN_SHARDS, thread_name_prefix="origin-marks")
BATCH_LIMIT = 100  # operations per table transaction


class EventLinkStore:
    def __init__(self, store: StateStore) -> None:
        self._table = store.table(EVENT_LINKS_TABLE)

    def read(self, guid: str) -> tuple[AppointmentState | None, dict[str, EventLink]]:
        state, links = appointment_rows(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": guid}))
        if needs_origin_look_up(state, links) and self._is_outlook_origin(guid):
            state = with_outlook_origin(state, guid)
        return state, links

    def save_state(self, state: AppointmentState) -> AppointmentState:
        return replace(state, etag=self._save(_state_entity(state), state.etag))

    def save_link(self, link: EventLink) -> EventLink:
        return replace(link, etag=self._save(_link_entity(link), link.etag))

    def mark_outlook_origin(self, guid: str) -> None:
        """The Outlook → Dime.Scheduler path created this appointment: never write it back."""
        self.mark_outlook_origins([guid])

    def mark_outlook_origins(self, guids: list[str]) -> None:
        """Marks live in a few partitions of their own (not in each appointment's partition), so a
        backfill's page of 100 new appointments costs one table transaction per shard, not 100
        writes, the shards' transactions sent at once (a page or a packed message waits for one
        round trip, not four). Several shards, not one: a single partition is served at up to
        2,000 entities/s ("Scalability and performance targets for Table storage", Microsoft
        Learn), shared by every backfill of every instance; and Azurite's cost per write grows with
        the partition's size (one partition of 10,000 marks took 19 of a backfill's 25 s of Azurite
        CPU). The shard is a function of the GUID alone: a look-up knows nothing else."""
        batches = origin_batches(guids)
        if len(batches) <= 1:
            for batch in batches:
                self._table.submit_transaction(batch)
            return
        futures = [_MARKERS.submit(self._table.submit_transaction, batch) for batch in batches]
        errors = [future.exception() for future in futures]  # every one finished (marks are idempotent)
        for error in errors:
            if error is not None:
                raise error

    def _is_outlook_origin(self, guid: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._table.get_entity(origin_partition(guid), guid, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    def links(self) -> Iterator[EventLink]:
        query = "RowKey ne @row and (PartitionKey lt @origins or PartitionKey ge @after )"  # the SDK splits on spaces
        parameters = {"row": STATE_ROW, "origins": ORIGIN_PREFIX, "after": ORIGIN_PREFIX[:-1] + chr(ord("-") + 1)}
        for entity in self._table.query_entities(query, parameters=parameters):
            yield _link_from(entity)

    def states(self) -> Iterator[AppointmentState]:
        for entity in self._table.query_entities("RowKey eq @row", parameters={"row": STATE_ROW}):
            yield _state_from(entity)

    def expired_tombstones(self, before: datetime, limit: int) -> list[Any]:
        """The rows of up to `limit` deleted appointments whose state was last written before
        `before`: the state row and its mailbox rows, each with its etag, only where no mailbox
        row still names an event (those are not finished; they are left alone)."""
        query = "RowKey eq @row and Deleted eq true and Timestamp lt @before"
        states = self._table.query_entities(
            query, parameters={"row": STATE_ROW, "before": before}, select=["PartitionKey", "RowKey"]
        )
        rows: list[Any] = []
        for state in itertools.islice(states, limit):
            partition = list(
                self._table.query_entities("PartitionKey eq @pk", parameters={"pk": state["PartitionKey"]})
            )
            current = next((e for e in partition if e["RowKey"] == STATE_ROW), None)
            if current is None or current.metadata.get("etag") != state.metadata.get("etag"):
                continue  # written again since the first query: decided next time
            if len(partition) > BATCH_LIMIT or any(
                e.get("EventId") or _pending(e.get("Pending")) is not None
                for e in partition
                if e["RowKey"] != STATE_ROW
            ):
                continue
            rows.extend(partition)
        return rows

    def delete_rows(self, rows: list[Any]) -> tuple[int, int]:
        """All rows of one appointment go in one table transaction: the state row is etag-
        conditional, so an appointment revived meanwhile keeps its rows."""
        from shared.adapters.storage.tables import delete_unchanged

        return delete_unchanged(self._table, rows, whole_partitions=True)

    def _save(self, entity: dict[str, Any], etag: str | None) -> str | None:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        try:
            if etag is None:
                metadata = self._table.create_entity(entity)
            else:
                metadata = self._table.update_entity(entity, mode=UpdateMode.REPLACE, **_conditional(etag))
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise ConcurrentUpdate(str(error)) from error
        return metadata.get("etag")


# Row mapping (shared by this store and the asynchronous one, shared/adapters/storage/aio_stores.py) ---


def appointment_rows(entities: Any) -> tuple[AppointmentState | None, dict[str, EventLink]]:
    """An appointment's partition as read: its state row and its links by mailbox."""
    state: AppointmentState | None = None
    links: dict[str, EventLink] = {}
    for entity in entities:
        if entity["RowKey"] == STATE_ROW:
            state = _state_from(entity)
        else:
            link = _link_from(entity)
            links[link.mailbox_id] = link
    return state, links


def needs_origin_look_up(state: AppointmentState | None, links: dict[str, EventLink]) -> bool:
    """An appointment we placed in a calendar is not Outlook's; only one we hold no event for
    costs the look-up of the Outlook → Dime.Scheduler path's mark."""
    return not links and not (state and state.outlook_origin)


def with_outlook_origin(state: AppointmentState | None, guid: str) -> AppointmentState:
    return replace(state, outlook_origin=True) if state else _origin_state(guid)


def origin_batches(guids: list[str]) -> list[list[tuple[str, dict[str, Any]]]]:
    """The table transactions that mark `guids` as Outlook's: one per shard and 100 marks."""
    by_shard: dict[str, list[dict[str, Any]]] = {}
    for guid in dict.fromkeys(guids):
        partition = origin_partition(guid)
        by_shard.setdefault(partition, []).append({"PartitionKey": partition, "RowKey": guid})
    return [
        [("upsert", e) for e in entities[start : start + BATCH_LIMIT]]
        for entities in by_shard.values()
        for start in range(0, len(entities), BATCH_LIMIT)
    ]


def origin_partition(guid: str) -> str:
    """The mark's partition: a stable function of the GUID alone (a look-up knows nothing else)."""
    return f"{ORIGIN_PREFIX}{zlib.crc32(guid.encode('utf-8')) % ORIGIN_SHARDS}"


def _state_entity(state: AppointmentState) -> dict[str, Any]:
    return {
        "PartitionKey": state.guid,
        "RowKey": STATE_ROW,
        "LastModified": state.last_modified or "",
        "Deleted": state.deleted,
        "Publication": json.dumps(state.publication, separators=(",", ":")) if state.publication else "",
        "OutlookOrigin": state.outlook_origin,
        "Unmatched": json.dumps([list(u) for u in state.unmatched]),
        "UpdatedAt": state.updated_at or "",
    }


def _origin_state(guid: str) -> AppointmentState:
    return AppointmentState(guid=guid, last_modified=None, deleted=False, publication=None, outlook_origin=True)


def _state_from(entity: Any) -> AppointmentState:
    publication = entity.get("Publication") or ""
    return AppointmentState(
        guid=entity["PartitionKey"],
        last_modified=entity.get("LastModified") or None,
        deleted=bool(entity.get("Deleted", False)),
        publication=json.loads(publication) if publication else None,
        outlook_origin=bool(entity.get("OutlookOrigin", False)),
        unmatched=tuple(tuple(u) for u in json.loads(entity.get("Unmatched") or "[]")),  # type: ignore[misc]
        updated_at=entity.get("UpdatedAt") or None,
        etag=entity.metadata.get("etag"),
    )


def _link_entity(link: EventLink) -> dict[str, Any]:
    return {
        "PartitionKey": link.appointment_guid,
        "RowKey": link.mailbox_id,
        "Resource": link.resource,
        "ResourceEmail": link.resource_email,
        "EventId": link.event_id or "",
        "Generation": link.generation,
        "SentHash": link.sent_hash or "",
        "Start": link.start or "",
        "SyncedAt": link.synced_at,
        "Dismissed": link.dismissed,
        "Pending": -1 if link.pending is None else link.pending,
        "Subject": link.subject or "",
    }


def _link_from(entity: Any) -> EventLink:
    return EventLink(
        appointment_guid=entity["PartitionKey"],
        mailbox_id=entity["RowKey"],
        resource=entity.get("Resource", ""),
        resource_email=entity.get("ResourceEmail", ""),
        event_id=entity.get("EventId") or None,
        generation=int(entity.get("Generation", 0)),
        sent_hash=entity.get("SentHash") or None,
        start=entity.get("Start") or None,
        synced_at=entity.get("SyncedAt", ""),
        dismissed=bool(entity.get("Dismissed", False)),
        etag=entity.metadata.get("etag"),
        pending=_pending(entity.get("Pending")),
        subject=entity.get("Subject") or None,
    )


def _pending(value: Any) -> int | None:
    """The generation of a create in flight or abandoned; -1 (or absent, rows written before) is none."""
    return int(value) if isinstance(value, int) and value >= 0 else None
