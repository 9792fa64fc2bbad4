"""The asynchronous table and queue adapters (shared/adapters/storage/aio_*.py) against Azurite.

They share the sync stores' mapping, so every test writes with one transport and reads with the
other: a row's keys, encoding and etag rules must agree both ways.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.adapters.storage.event_links_store import EventLinkStore
from shared.adapters.storage.syncstate_store import SyncStateStore
from shared.adapters.storage.tables import ConcurrentUpdate
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.links import Link
from shared.core.transactions import Status, Transaction, new_transaction_id
from shared.names import HISTORY_TABLE, LINKS_TABLE, PUBLICATIONS_QUEUE
from shared.services import Services

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def link(event_id: str, mailbox: str = "mbx-1", **values: Any) -> Link:
    fields: dict[str, Any] = {
        "mailbox_id": mailbox,
        "event_id": event_id,
        "appointment_guid": f"guid-{event_id}",
        "origin": "outlook",
        "change_key": "ck1",
        "content_hash": "h1",
        "resource_email": "tech@example.com",
        "synced_at": NOW.isoformat(),
    }
    return Link(**{**fields, **values})


def run(services: Services, work: Any) -> Any:
    """One asyncio.run, as a queue invocation in the tests is."""

    async def main() -> Any:
        return await work(services.astore)

    return asyncio.run(main())


def test_links_written_by_one_transport_read_by_the_other(services: Services) -> None:
    event_ids = [f"AAMk/{n}+=" for n in range(30)]  # characters keys forbid; more than one filter's 14
    saved = run(services, lambda store: asyncio.gather(*(store.save_link(link(e)) for e in event_ids)))
    assert all(s.etag for s in saved)
    assert services.store.get_link("mbx-1", event_ids[0]) == saved[0]

    services.store.save_link(link("sync-made", series_master_id="master-1"))
    found = run(services, lambda store: store.links_among("mbx-1", [*event_ids, "sync-made", "never"]))
    assert sorted(found) == sorted([*event_ids, "sync-made"])
    series = run(services, lambda store: store.links_of_series("mbx-1", "master-1"))
    assert [s.event_id for s in series] == ["sync-made"]
    assert len(run(services, lambda store: store.links_of("mbx-1"))) == 31


def test_concurrent_update_as_the_sync_store_says_it(services: Services) -> None:
    first = run(services, lambda store: store.save_link(link("e1")))
    services.store.save_link(first)  # someone else replaced it: `first`'s etag is stale now
    with pytest.raises(ConcurrentUpdate):
        run(services, lambda store: store.save_link(first))
    with pytest.raises(ConcurrentUpdate):
        run(services, lambda store: store.delete_link(first))
    with pytest.raises(ConcurrentUpdate):  # an insert of a row that exists
        run(services, lambda store: store.save_link(link("e1")))
    with pytest.raises(ConcurrentUpdate):  # a batch insert of one that exists: nothing of it applied
        run(services, lambda store: store.insert_links([link("new-1"), link("e1")]))
    assert services.store.get_link("mbx-1", "new-1") is None

    current = services.store.get_link("mbx-1", "e1")
    run(services, lambda store: store.delete_link(current))
    run(services, lambda store: store.delete_link(current))  # already gone: the same outcome, no error
    assert services.store.get_link("mbx-1", "e1") is None


def test_a_replace_of_a_deleted_row_is_a_concurrent_update(services: Services) -> None:
    saved = run(services, lambda store: store.save_link(link("e2")))
    services.store.delete_link(saved)
    with pytest.raises(ConcurrentUpdate):
        run(services, lambda store: store.save_link(saved))


def test_inserted_links_and_transactions_are_the_sync_stores_rows(services: Services) -> None:
    run(services, lambda store: store.insert_links([link(f"batch-{n}") for n in range(150)]))  # two transactions
    assert len(list(services.store.links_of("mbx-1"))) == 150

    def transaction(status: Status, n: int) -> Transaction:
        return Transaction(
            mailbox_id="mbx-1",
            direction="outlook-to-dime",
            operation="upsert",
            status=status,
            created_at=NOW.isoformat(),
            id=new_transaction_id(NOW) + f"{n:03d}",
            error_code="DIME_REJECTED" if status is Status.FAILED else None,
            payload={"n": n, "text": "ü" * 40_000} if n == 0 else {"n": n},  # one payload split in chunks
        )

    failed = [transaction(Status.FAILED, n) for n in range(3)]
    succeeded = [transaction(Status.SUCCEEDED, n) for n in range(3, 120)]
    run(services, lambda store: store.transactions.add_many([*failed, *succeeded[:100]]))
    run(services, lambda store: asyncio.gather(*(store.add_transaction(t) for t in succeeded[100:])))
    stored = {t.id: t for t in services.store.transactions_of("mbx-1")}
    assert len(stored) == 120
    assert stored[failed[0].id].payload == failed[0].payload
    assert sorted(t.id for t in transaction_store(services).failed()) == sorted(t.id for t in failed)

    resolved = Transaction(**{**vars(failed[1]), "status": Status.SUCCEEDED})
    run(services, lambda store: store.transactions.save(resolved))
    assert sorted(t.id for t in transaction_store(services).failed()) == sorted([failed[0].id, failed[2].id])


def test_concurrent_history_counts_are_not_lost(services: Services) -> None:
    """Twenty concurrent writes from one loop: each outcome counted once (a shard is lent to one
    write at a time; a thread-local shard would let an older total land last)."""
    transactions = [
        Transaction("mbx-1", "outlook-to-dime", "upsert", Status.SUCCEEDED, NOW.isoformat(), id=f"t{n}")
        for n in range(20)
    ]
    run(services, lambda store: asyncio.gather(*(store.add_transaction(t) for t in transactions)))
    rows = list(services.store.table(HISTORY_TABLE).query_entities(""))
    counted = sum(v for row in rows for k, v in row.items() if k.startswith("Outlook") and isinstance(v, int))
    assert counted == 20, rows


def test_tombstones_and_webhook_deletes_agree_with_the_sync_store(services: Services) -> None:
    sync = SyncStateStore(services.store)

    async def work(store: Any) -> tuple[bool, set[str], list[str]]:
        await store.syncstate.add_tombstone("mbx-1", "gone/1", NOW)
        await store.syncstate.add_tombstone("mbx-1", "gone/2", NOW)
        await store.syncstate.remove_tombstone("mbx-1", "gone/2")
        await store.syncstate.remove_tombstone("mbx-1", "never")  # nothing to remove: no error
        await store.syncstate.note_webhook_delete("mbx-1", NOW)
        await store.syncstate.note_webhook_delete("mbx-1", NOW)
        return (
            await store.syncstate.is_tombstoned("mbx-1", "gone/1"),
            await store.syncstate.tombstoned_events("mbx-1"),
            await store.syncstate.recent_webhook_deletes("mbx-1", NOW),
        )

    tombstoned, events, deletes = run(services, work)
    assert tombstoned and events == {"gone/1"} and len(deletes) == 2
    assert sync.is_tombstoned("mbx-1", "gone/1") and not sync.is_tombstoned("mbx-1", "gone/2")
    sync.add_tombstone("mbx-1", "sync/3", NOW)
    assert run(services, lambda store: store.syncstate.tombstoned_events("mbx-1")) == {"gone/1", "sync/3"}
    assert len(sync.recent_webhook_deletes("mbx-1", NOW)) == 2


def test_event_links_and_outlook_origin_marks(services: Services) -> None:
    sync = EventLinkStore(services.store)
    state = AppointmentState(guid="g-1", last_modified="2026-12-01", deleted=False, publication={"a": 1})
    row = EventLink("g-1", "mbx-1", "R1", "r1@example.com", "ev-1", 1, "hash", None, NOW.isoformat())

    async def work(store: Any) -> Any:
        saved_state = await store.eventlinks.save_state(state)
        saved_link = await store.eventlinks.save_link(row)
        with pytest.raises(ConcurrentUpdate):
            await store.eventlinks.save_state(state)  # a second insert: someone else made it
        await store.eventlinks.mark_outlook_origins([f"origin-{n}" for n in range(250)])  # shards, 100 per batch
        return saved_state, saved_link, await store.eventlinks.read("origin-7"), await store.eventlinks.read("g-1")

    saved_state, saved_link, origin, read = run(services, work)
    assert sync.read("g-1") == (saved_state, {"mbx-1": saved_link}) == read
    assert origin[0] is not None and origin[0].outlook_origin and origin[1] == {}
    assert sync.read("origin-249")[0].outlook_origin
    assert run(services, lambda store: store.eventlinks.read("not-marked")) == (None, {})


def test_empty_storage_is_provisioned_and_a_vanished_table_heals(services: Services) -> None:
    """Nothing exists on first use; a table deleted under a running process comes back."""
    table_service = services.store._service
    for item in list(table_service.list_tables()):
        table_service.delete_table(item.name)
    services.provisioned_tables.names.clear()  # a new process
    assert run(services, lambda store: store.get_link("mbx-1", "e1")) is None  # every table created
    assert {t.name for t in table_service.list_tables()} >= {LINKS_TABLE, HISTORY_TABLE}

    table_service.delete_table(LINKS_TABLE)  # provisioned as far as the process knows; gone
    saved = run(services, lambda store: store.save_link(link("healed")))
    assert services.store.get_link("mbx-1", "healed") == saved

    # The sync store heals an insert too (its SDK gives a 404 of an insert no error code).
    table_service.delete_table(LINKS_TABLE)
    services.store.save_link(link("sync-healed"))
    assert services.store.get_link("mbx-1", "sync-healed") is not None


def test_queue_messages_are_the_sync_senders_bytes(services: Services) -> None:
    message = {"guid": "g-1", "text": "é ü", "n": [1, 2]}
    services.queues.send(PUBLICATIONS_QUEUE, message)

    async def send() -> None:
        await services.aqueues.send(PUBLICATIONS_QUEUE, message)
        await services.aqueues.send_many(PUBLICATIONS_QUEUE, [{"n": n} for n in range(5)])

    asyncio.run(send())
    from azure.storage.queue import QueueClient

    raw = QueueClient.from_connection_string(services.settings.storage.connection_string, PUBLICATIONS_QUEUE)
    bodies = [m.content for m in raw.receive_messages(messages_per_page=32, max_messages=32)]
    assert len(bodies) == 7
    assert bodies[0] == bodies[1]  # the same base64 text from both senders
    assert sorted(base64.b64decode(b) for b in bodies[2:]) == sorted(f'{{"n":{n}}}'.encode() for n in range(5))


def test_each_loop_gets_its_own_clients_closed_when_it_ends(services: Services) -> None:
    async def use() -> Any:
        await services.astore.get_link("mbx-1", "e1")
        await services.aqueues.send(PUBLICATIONS_QUEUE, {"n": 1})
        return services.on_this_loop(), services.astore

    first_adapters, first_store = asyncio.run(use())
    assert "store" not in first_adapters.__dict__ and "queues" not in first_adapters.__dict__  # closed
    second_adapters, second_store = asyncio.run(use())
    assert second_store is not first_store and second_adapters is not first_adapters


def test_the_ca_bundle_is_loaded_once_not_per_request(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-core's aiohttp transport would build a TLS context (loading the whole bundle, ~50 ms
    of CPU) for every request when the environment names a CA bundle; ours builds it once."""
    import ssl

    import certifi

    from shared.adapters.storage import clients

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    clients._tls_context.cache_clear()
    made: list[Any] = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: made.append(k.get("cafile")) or real(*a, **k))

    async def calls() -> None:
        for n in range(5):
            await services.astore.get_link("mbx-1", f"e{n}")
        await services.aqueues.send(PUBLICATIONS_QUEUE, {"n": 1})

    asyncio.run(calls())
    assert made == [certifi.where()]


def test_an_idle_connection_is_dropped_before_azurite_closes_it(services: Services, monkeypatch: pytest.MonkeyPatch):
    """Azurite closes a keep-alive connection idle 5 s, aiohttp would reuse it for 15 s, and
    azure-core retries no POST that failed before an answer: a create or `$batch` sent on such a
    connection failed (bench_timers, 2 processes). Our sessions keep idle connections for less."""
    import re
    from pathlib import Path

    import aiohttp

    constants = str(Path(__file__).resolve().parents[2] / "node_modules/azurite/dist/src/{}/utils/constants.js")
    timeouts = [
        float(
            re.search(
                rf"DEFAULT_{kind.upper()}_KEEP_ALIVE_TIMEOUT = ([0-9.]+);", Path(constants.format(kind)).read_text()
            )[1]
        )
        for kind in ("table", "queue")
    ]
    made: list[Any] = []
    real = aiohttp.TCPConnector
    monkeypatch.setattr(
        aiohttp, "TCPConnector", lambda *a, **k: made.append(k.get("keepalive_timeout")) or real(*a, **k)
    )

    async def calls() -> None:
        await services.astore.get_link("mbx-1", "e1")
        await services.aqueues.send(PUBLICATIONS_QUEUE, {"n": 1})

    asyncio.run(calls())
    assert len(made) == 2 and all(t is not None and t < min(timeouts) for t in made)
