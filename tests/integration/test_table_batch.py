"""Table transactions written by hand (`shared/adapters/storage/table_batch.py`) against a real Azurite:
the rows are those the SDK's `submit_transaction` writes, a failure raises the SDK's own error and
applies nothing, a vanished table heals; and the Outlook-origin marks, spread over a few
partitions, are found again and never listed as links."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableClient, TableTransactionError

from shared.adapters.storage.event_links_store import ORIGIN_PREFIX, ORIGIN_SHARDS, EventLinkStore, origin_partition
from shared.adapters.storage.table_batch import send_batch
from shared.core.dime_to_outlook.links import EventLink
from shared.names import EVENT_LINKS_TABLE, TRANSACTIONS_TABLE
from tests.storage_counter import StorageCounter


def rows(table, partition: str) -> list[dict]:
    return sorted(
        (dict(entity) for entity in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})),
        key=lambda entity: entity["RowKey"],
    )


def operations(partition: str) -> list[tuple[str, dict]]:
    """Every property type the app writes, keys with quotes, spaces and non-ASCII characters."""
    return [
        ("upsert", {"PartitionKey": partition, "RowKey": "it's a key", "Text": "x" * 300, "Flag": True, "Count": 7}),
        ("create", {"PartitionKey": partition, "RowKey": "émile ~ 100%", "Empty": "", "Skipped": None}),
        *(("upsert", {"PartitionKey": partition, "RowKey": f"row-{n:03d}", "N": n}) for n in range(98)),
    ]


def test_a_transaction_writes_the_rows_the_sdk_writes_in_one_request(services, monkeypatch):
    table = services.store.table(TRANSACTIONS_TABLE)
    table.submit_transaction(operations("by-sdk-reference"))  # the SDK, for comparison (the fast path is next)
    sdk_rows = rows(table, "by-sdk-reference")
    counter = StorageCounter.install()
    counter.reset()
    monkeypatch.setattr(TableClient, "submit_transaction", lambda *a, **k: pytest.fail("went through the SDK"))

    table.submit_transaction(operations("by-hand"))

    assert counter.by_service().get("table") == 1
    by_hand = rows(table, "by-hand")
    assert len(by_hand) == 100
    assert [{**r, "PartitionKey": "-"} for r in by_hand] == [{**r, "PartitionKey": "-"} for r in sdk_rows]
    assert by_hand[0]["Flag"] is True and by_hand[0]["Count"] == 7 and "Skipped" not in by_hand[-3]

    # An upsert merges into the existing row, as the SDK's default (MERGE) does.
    table.submit_transaction([("upsert", {"PartitionKey": "by-hand", "RowKey": "it's a key", "Count": 8})])
    merged = rows(table, "by-hand")[0]
    assert merged["Count"] == 8 and merged["Text"] == "x" * 300


def test_a_failed_transaction_raises_the_sdks_error_and_applies_nothing(services):
    table = services.store.table(TRANSACTIONS_TABLE)
    table.submit_transaction([("create", {"PartitionKey": "conflict", "RowKey": "taken"})])
    counter = StorageCounter.install()
    counter.reset()

    with pytest.raises(TableTransactionError) as raised:
        table.submit_transaction(
            [
                ("create", {"PartitionKey": "conflict", "RowKey": "new"}),
                ("create", {"PartitionKey": "conflict", "RowKey": "taken"}),
            ]
        )

    assert raised.value.status_code == 409
    assert counter.by_service().get("table") == 2  # the request, then the SDK's for its exact error
    assert [r["RowKey"] for r in rows(table, "conflict")] == ["taken"]  # "new" was not applied either


def test_conditional_replaces_and_replacing_upserts_are_written_by_hand_too(services, monkeypatch):
    """Delta's closing transaction (lease given back if still ours, position, run record): an
    `update` REPLACE with an etag it must still have (If-Match) and `upsert`s in REPLACE mode, one
    request; a stale etag fails the whole transaction with the SDK's 412 and applies nothing."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    table = services.store.table(TRANSACTIONS_TABLE)
    table.submit_transaction([("create", {"PartitionKey": "close", "RowKey": "lease", "Owner": "me", "Extra": 1})])
    table.submit_transaction([("create", {"PartitionKey": "close", "RowKey": "run", "Old": "gone after replace"})])
    etag = table.get_entity("close", "lease").metadata["etag"]
    replace = {"mode": UpdateMode.REPLACE}

    def closing(etag: str) -> list:
        still_ours = {**replace, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        return [
            ("update", {"PartitionKey": "close", "RowKey": "lease", "Owner": ""}, still_ours),
            ("upsert", {"PartitionKey": "close", "RowKey": "position", "Link": "it's new"}, replace),
            ("upsert", {"PartitionKey": "close", "RowKey": "run", "Outcome": "completed"}, replace),
        ]

    sdk = TableClient.submit_transaction
    counter = StorageCounter.install()
    counter.reset()
    monkeypatch.setattr(TableClient, "submit_transaction", lambda *a, **k: pytest.fail("went through the SDK"))
    table.submit_transaction(closing(etag))

    assert counter.by_service().get("table") == 1
    written = {r["RowKey"]: r for r in rows(table, "close")}
    assert {k: v for k, v in written["lease"].items() if k != "PartitionKey"} == {"RowKey": "lease", "Owner": ""}
    assert written["position"]["Link"] == "it's new"
    assert "Old" not in written["run"] and written["run"]["Outcome"] == "completed"  # replaced, not merged

    monkeypatch.setattr(TableClient, "submit_transaction", sdk)
    with pytest.raises(TableTransactionError) as raised:
        table.submit_transaction(closing(etag))  # the lease changed since: that etag is stale
    assert raised.value.status_code == 412
    assert rows(table, "close") == list(written.values())  # nothing applied


def test_the_hand_written_request_refuses_what_it_does_not_handle(services):
    raw = services.store.table(TRANSACTIONS_TABLE)._client  # the SDK's TableClient inside HealingTable
    assert not send_batch(raw, [("update", {"PartitionKey": "p", "RowKey": "r"}, {"etag": "W/x"})])  # no condition
    assert not send_batch(raw, [("merge", {"PartitionKey": "p", "RowKey": "r"})])
    assert not send_batch(
        raw, [("upsert", {"PartitionKey": "p", "RowKey": "a"}), ("upsert", {"PartitionKey": "q", "RowKey": "b"})]
    )
    assert not send_batch(raw, [("upsert", {"PartitionKey": "p", "RowKey": str(n)}) for n in range(101)])
    cosmos = TableClient.from_connection_string(
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;TableEndpoint=https://a.table.cosmos.azure.com/;",
        "links",
    )
    assert not send_batch(cosmos, [("upsert", {"PartitionKey": "p", "RowKey": "a"})])  # no request made
    assert rows(services.store.table(TRANSACTIONS_TABLE), "p") == []
    with pytest.raises(ValueError):  # the SDK's own answer to mixed partitions
        services.store.table(TRANSACTIONS_TABLE).submit_transaction(
            [("upsert", {"PartitionKey": "p", "RowKey": "a"}), ("upsert", {"PartitionKey": "q", "RowKey": "b"})]
        )


def test_replaces_conditional_merges_and_deletes_go_by_hand_answering_each_rows_etag(services, monkeypatch):
    """What a bulk retry sends (its claims, saves and index deletes): one request, the rows the
    SDK would leave, the new etag of each written row; a stale etag applies nothing and raises
    the SDK's own error."""
    import asyncio

    from azure.data.tables import UpdateMode
    from azure.data.tables.aio import TableClient as AsyncTableClient

    from shared.adapters.storage.table_rows import conditional

    def merge_if(etag):
        return {"mode": UpdateMode.MERGE, **conditional(etag)}

    table = services.store.table(TRANSACTIONS_TABLE)
    table.submit_transaction([("upsert", {"PartitionKey": "c", "RowKey": f"r{n}", "A": 1, "B": 2}) for n in range(3)])
    read = {r["RowKey"]: r.metadata["etag"] for r in table.query_entities("PartitionKey eq 'c'")}
    operations = [
        ("upsert", {"PartitionKey": "c", "RowKey": "r0", "A": 5}, {"mode": UpdateMode.REPLACE}),
        (
            "update",
            {"PartitionKey": "c", "RowKey": "r1", "C": 3},
            {"mode": UpdateMode.MERGE, **conditional(read["r1"])},
        ),
        ("delete", {"PartitionKey": "c", "RowKey": "r2"}),
    ]

    async def submit(operations):
        tables = services.astore.tables
        return await tables.submit(TRANSACTIONS_TABLE, operations)

    counter = StorageCounter.install()
    counter.reset()
    with monkeypatch.context() as patched:
        patched.setattr(AsyncTableClient, "submit_transaction", lambda *a, **k: pytest.fail("went through the SDK"))
        answers = asyncio.run(submit(operations))

    assert {k: n for k, n in counter.table_requests().items() if k != "POST Tables"} == {"POST $batch": 1}
    after = {r["RowKey"]: r for r in table.query_entities("PartitionKey eq 'c'")}
    assert {key: dict(row) for key, row in after.items()} == {
        "r0": {"PartitionKey": "c", "RowKey": "r0", "A": 5},  # replaced: B is gone
        "r1": {"PartitionKey": "c", "RowKey": "r1", "A": 1, "B": 2, "C": 3},  # merged
    }
    assert [a["etag"] for a in answers] == [after["r0"].metadata["etag"], after["r1"].metadata["etag"], None]

    stale = [("delete", {"PartitionKey": "c", "RowKey": "r0"}), operations[1]]  # r1's etag changed above
    with pytest.raises(TableTransactionError) as raised:
        asyncio.run(submit(stale))
    assert raised.value.status_code == 412
    assert sorted(r["RowKey"] for r in table.query_entities("PartitionKey eq 'c'")) == ["r0", "r1"]


def test_a_transaction_heals_a_vanished_table(services):
    table = services.store.table(TRANSACTIONS_TABLE)
    services.store._service.delete_table(TRANSACTIONS_TABLE)  # emptied under the running process

    table.submit_transaction([("upsert", {"PartitionKey": "healed", "RowKey": "r"})])

    assert [r["RowKey"] for r in rows(table, "healed")] == ["r"]


def test_origin_marks_spread_over_a_few_partitions_are_found_and_never_listed_as_links(services):
    store = EventLinkStore(services.store)
    guids = [str(uuid.uuid4()) for _ in range(100)]
    linked = str(uuid.uuid4())
    store.save_link(
        EventLink(linked, "m1", "R1", "r1@contoso.com", "event-1", 1, None, None, synced_at="2026-12-01T00:00:00+00:00")
    )
    counter = StorageCounter.install()
    counter.reset()

    store.mark_outlook_origins(guids)

    assert counter.by_service().get("table") == ORIGIN_SHARDS  # one transaction per shard
    assert len({origin_partition(guid) for guid in guids}) == ORIGIN_SHARDS
    table = services.store.table(EVENT_LINKS_TABLE)
    for shard in range(ORIGIN_SHARDS):
        assert {r["RowKey"] for r in rows(table, f"{ORIGIN_PREFIX}{shard}")} <= set(guids)
    state, links = store.read(guids[0])
    assert state is not None and state.outlook_origin and links == {}
    state, _ = store.read(str(uuid.uuid4()))
    assert state is None
    assert [link.appointment_guid for link in store.links()] == [linked]


def test_a_failed_shard_of_marks_raises_after_the_others_are_written(services, monkeypatch):
    store = EventLinkStore(services.store)
    table = services.store.table(EVENT_LINKS_TABLE)
    failing = f"{ORIGIN_PREFIX}0"
    real = type(table).submit_transaction

    def submit(self, operations, **kwargs):
        if operations[0][1]["PartitionKey"] == failing:
            raise RuntimeError("storage failed")
        return real(self, operations, **kwargs)

    monkeypatch.setattr(type(table), "submit_transaction", submit)
    guids = [str(uuid.uuid4()) for _ in range(60)]

    with pytest.raises(RuntimeError):
        store.mark_outlook_origins(guids)

    written = {r["RowKey"] for shard in range(1, ORIGIN_SHARDS) for r in rows(table, f"{ORIGIN_PREFIX}{shard}")}
    assert written == {guid for guid in guids if origin_partition(guid) != failing}
