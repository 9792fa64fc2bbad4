"""State in Azure Table Storage: resources, links and transactions.

Keys: resources live in one partition keyed by mailbox object id; links and transactions are
partitioned by mailbox, so "everything of one mailbox" is a single-partition query. Event ids are
encoded for keys (they may contain '/', which keys forbid).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared.adapters.storage.history_store import history_store
from shared.adapters.storage.provisioning import HealingTable, Provisioner
from shared.adapters.storage.table_rows import BATCH_LIMIT, ConcurrentUpdate, conditional, delete_unchanged
from shared.adapters.storage.transactions_store import TransactionStore
from shared.core.consent import Consent
from shared.core.ids import encode_key
from shared.core.links import Link
from shared.core.resources import Resource
from shared.core.transactions import Transaction
from shared.names import ALL_TABLES, LINKS_TABLE, RESOURCES_TABLE, TRANSACTIONS_TABLE

FILTER_KEYS = 14  # RowKeys per query: with the PartitionKey, the 15 comparisons a filter may hold

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

RESOURCE_PARTITION = "resource"

# Re-exported: the stores and use cases import these from here.
__all__ = ["BATCH_LIMIT", "RESOURCE_PARTITION", "ConcurrentUpdate", "StateStore", "delete_unchanged"]


class StateStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._tables: dict[str, TableClient] = {}
        self.provisioner = Provisioner(ALL_TABLES, self._create_table)

    def table(self, name: str) -> TableClient:
        """The table's client; the first use in this process creates every table of the app."""
        self.provisioner.ensure(name)
        if name not in self._tables:
            client = self._service.get_table_client(name)
            self._tables[name] = HealingTable(client, lambda: self.provisioner.again(name))  # type: ignore[assignment]
        return self._tables[name]

    def _create_table(self, name: str) -> None:
        self._service.create_table_if_not_exists(name)

    def create_tables(self) -> None:
        """Create every table now (scripts/create_storage.py); the app also does it on first use."""
        for name in ALL_TABLES:
            self.provisioner.ensure(name)

    def ping(self) -> None:
        """A cheap call that proves the table service answers (health): one page of one row."""
        pages = self._service.list_tables(results_per_page=1, retry_total=0, connection_timeout=3, read_timeout=3)
        next(iter(pages.by_page()), None)

    # Resources -------------------------------------------------------------------------------

    def get_resource(self, object_id: str) -> Resource | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self.table(RESOURCES_TABLE).get_entity(RESOURCE_PARTITION, object_id.lower())
        except ResourceNotFoundError:
            return None
        return _resource_from_entity(entity)

    def add_resource(self, resource: Resource) -> Resource:
        """Insert a new mailbox; if another worker won the race, theirs is kept."""
        from azure.core.exceptions import ResourceExistsError

        try:
            self.table(RESOURCES_TABLE).create_entity(_resource_entity(resource))
        except ResourceExistsError:
            existing = self.get_resource(resource.object_id)
            assert existing is not None
            return existing
        return resource

    def put_resource(self, resource: Resource) -> None:
        from azure.data.tables import UpdateMode

        self.table(RESOURCES_TABLE).upsert_entity(_resource_entity(resource), mode=UpdateMode.REPLACE)

    def list_resources(self) -> Iterator[Resource]:
        for entity in self.table(RESOURCES_TABLE).query_entities(
            "PartitionKey eq @pk", parameters={"pk": RESOURCE_PARTITION}
        ):
            yield _resource_from_entity(entity)

    # Links -----------------------------------------------------------------------------------

    def get_link(self, mailbox_id: str, event_id: str) -> Link | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self.table(LINKS_TABLE).get_entity(mailbox_id, encode_key(event_id))
        except ResourceNotFoundError:
            return None
        return _link_from_entity(entity)

    def links_among(self, mailbox_id: str, event_ids: list[str]) -> dict[str, Link]:
        """The links of these events of one mailbox, by event id: one query per 14 events (a
        filter holds at most 15 comparisons, "Querying tables and entities"), not a read each."""
        found: dict[str, Link] = {}
        unique = list(dict.fromkeys(event_ids))
        for start in range(0, len(unique), FILTER_KEYS):
            chunk = unique[start : start + FILTER_KEYS]
            parameters = {"pk": mailbox_id, **{f"r{n}": encode_key(e) for n, e in enumerate(chunk)}}
            keys = " or ".join(f"RowKey eq @r{n}" for n in range(len(chunk)))
            query = f"PartitionKey eq @pk and ( {keys} )"  # the SDK reads a parameter up to a space
            for entity in self.table(LINKS_TABLE).query_entities(query, parameters=parameters):
                link = _link_from_entity(entity)
                found[link.event_id] = link
        return found

    def save_link(self, link: Link) -> Link:
        """Insert (link.etag None) or replace only if unchanged since read; ConcurrentUpdate otherwise,
        also when the row is gone (another instance deleted it since we read it)."""
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        table = self.table(LINKS_TABLE)
        entity = _link_entity(link)
        try:
            if link.etag is None:
                metadata = table.create_entity(entity)
            else:
                metadata = table.update_entity(entity, mode=UpdateMode.REPLACE, **conditional(link.etag))
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as error:
            raise ConcurrentUpdate(str(error)) from error
        return replace(link, etag=metadata.get("etag"))

    def insert_links(self, links: list[Link]) -> None:
        """Insert new links of one mailbox, 100 per table transaction (all or nothing each);
        ConcurrentUpdate when one of a batch exists already (another instance linked it)."""
        from azure.data.tables import TableTransactionError

        table = self.table(LINKS_TABLE)
        for start in range(0, len(links), 100):
            operations = [("create", _link_entity(link)) for link in links[start : start + 100]]
            try:
                table.submit_transaction(operations)
            except TableTransactionError as error:
                if error.status_code == 409:
                    raise ConcurrentUpdate(str(error)) from error
                raise

    def delete_link(self, link: Link) -> None:
        """Delete only if unchanged since read (ConcurrentUpdate otherwise); a row already gone is
        the same outcome (another instance deleted it) and is not an error."""
        from azure.core.exceptions import ResourceModifiedError

        try:
            self.table(LINKS_TABLE).delete_entity(link.mailbox_id, encode_key(link.event_id), **conditional(link.etag))
        except ResourceModifiedError as error:
            raise ConcurrentUpdate(str(error)) from error

    def links_of(self, mailbox_id: str) -> Iterator[Link]:
        for entity in self.table(LINKS_TABLE).query_entities("PartitionKey eq @pk", parameters={"pk": mailbox_id}):
            yield _link_from_entity(entity)

    def links_of_series(self, mailbox_id: str, series_master_id: str) -> list[Link]:
        """The links of one series' instances (a scan of the mailbox's partition)."""
        query = "PartitionKey eq @pk and SeriesMasterId eq @master"
        entities = self.table(LINKS_TABLE).query_entities(
            query, parameters={"pk": mailbox_id, "master": series_master_id}
        )
        return [_link_from_entity(entity) for entity in entities]

    # Transactions ----------------------------------------------------------------------------

    # (Layout, failure index and paging live in shared/adapters/storage/transactions_store.py.)

    def add_transaction(self, transaction: Transaction) -> None:
        TransactionStore(self.table(TRANSACTIONS_TABLE), history_store(self)).add(transaction)

    def transactions_of(self, mailbox_id: str) -> Iterator[Transaction]:
        yield from TransactionStore(self.table(TRANSACTIONS_TABLE), history_store(self)).of_mailbox(mailbox_id)


# Entity mapping (kept beside the store: it is the storage format) -------------------------------


def _resource_entity(resource: Resource) -> dict[str, Any]:
    show_as, sensitivities = resource.consent.as_csv()
    return {
        "PartitionKey": RESOURCE_PARTITION,
        "RowKey": resource.object_id.lower(),
        "Upn": resource.upn,
        "DisplayName": resource.display_name,
        "Email": resource.email,
        "Enabled": resource.consent.enabled,
        "ShowAs": show_as,
        "Sensitivities": sensitivities,
        "SubscriptionId": resource.subscription_id or "",
        "SubscriptionExpiry": resource.subscription_expiry or "",
        "CreatedAt": resource.created_at or "",
        "UpdatedAt": resource.updated_at or "",
        "Locked": ",".join(sorted(resource.locked)),
    }


def _resource_from_entity(entity: dict[str, Any]) -> Resource:
    return Resource(
        object_id=entity["RowKey"],
        upn=entity.get("Upn", ""),
        display_name=entity.get("DisplayName") or "",
        email=entity.get("Email", ""),
        consent=Consent.parse(entity.get("Enabled", False), entity.get("ShowAs", ""), entity.get("Sensitivities", "")),
        subscription_id=entity.get("SubscriptionId") or None,
        subscription_expiry=entity.get("SubscriptionExpiry") or None,
        created_at=entity.get("CreatedAt") or None,
        updated_at=entity.get("UpdatedAt") or None,
        # Rows written before locks existed carry no column: nothing was locked then.
        locked=frozenset(v for v in str(entity.get("Locked") or "").split(",") if v),
    )


def _link_entity(link: Link) -> dict[str, Any]:
    return {
        "PartitionKey": link.mailbox_id,
        "RowKey": encode_key(link.event_id),
        "EventId": link.event_id,
        "AppointmentGuid": link.appointment_guid,
        "Origin": link.origin,
        "ChangeKey": link.change_key or "",
        "ContentHash": link.content_hash or "",
        "ResourceEmail": link.resource_email,
        "SyncedAt": link.synced_at,
        "SeriesMasterId": link.series_master_id or "",
        "AppointmentId": link.appointment_id or "",
        "KeptValues": json.dumps(link.kept_values, separators=(",", ":")) if link.kept_values else "",
        "Unproven": link.unproven,
        "Subject": link.subject or "",
        "Start": link.start or "",
    }


def _link_from_entity(entity: Any) -> Link:
    return Link(
        mailbox_id=entity["PartitionKey"],
        event_id=entity["EventId"],
        appointment_guid=entity["AppointmentGuid"],
        origin=entity.get("Origin", "outlook"),
        change_key=entity.get("ChangeKey") or None,
        content_hash=entity.get("ContentHash") or None,
        resource_email=entity.get("ResourceEmail", ""),
        synced_at=entity.get("SyncedAt", ""),
        etag=entity.metadata.get("etag"),
        series_master_id=entity.get("SeriesMasterId") or None,
        appointment_id=entity.get("AppointmentId") or None,
        kept_values=_kept(entity.get("KeptValues")),
        unproven=bool(entity.get("Unproven", False)),
        subject=entity.get("Subject") or None,
        start=entity.get("Start") or None,
    )


def _kept(value: Any) -> dict[str, str] | None:
    try:
        kept = json.loads(value) if value else None
    except ValueError:
        return None
    return {str(k): str(v) for k, v in kept.items()} if isinstance(kept, dict) else None
