"""The admin API over real Azurite: listing, paging, point reads, retry-all/archive-all, links, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

import function_app
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.transaction_query import public_id
from shared.core.transactions import Status, Transaction, new_transaction_id
from shared.names import NOTIFICATIONS_QUEUE, POISON_SUFFIX, SYNCSTATE_TABLE
from shared.usecases.admin import transactions as admin_transactions
from tests.conftest import MANAGE_HEADERS, settings_env
from tests.host import call_function

MAILBOXES = ["aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"]
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def get(function, params=None, route_params=None) -> tuple[int, dict]:
    request = func.HttpRequest(
        "GET", "/api/manage/x", params=params or {}, route_params=route_params or {}, headers=MANAGE_HEADERS, body=b""
    )
    response = call_function(function, request)
    return response.status_code, json.loads(response.get_body())


def post(function, body) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = call_function(function, func.HttpRequest("POST", "/api/manage/x", headers=MANAGE_HEADERS, body=raw))
    return response.status_code, json.loads(response.get_body())


def tx(mailbox: str, when: datetime, status: Status = Status.FAILED, **fields) -> Transaction:
    return Transaction(
        id=new_transaction_id(when),
        mailbox_id=mailbox,
        direction="outlook-to-dime",
        operation="upsert",
        status=status,
        created_at=when.isoformat(),
        error_code="DIME_REJECTED" if status is Status.FAILED else None,
        **fields,
    )


def list_all(params: dict) -> list[dict]:
    items, token = [], None
    while True:
        status, page = get(
            function_app.manage_transactions_list, {**params, **({"continuationToken": token} if token else {})}
        )
        assert status == 200, page
        items += page["items"]
        token = page.get("continuationToken")
        if not token:
            assert "continuationToken" not in page  # absent on the last page, never null
            return items


def test_paging_over_more_than_a_thousand_returns_each_exactly_once(services):
    rows = [
        tx(
            MAILBOXES[i % 3] if i % 3 < 2 else "cccccccc-0000-4000-8000-000000000003",
            DAY + timedelta(seconds=i),
            Status.FAILED if i % 10 == 0 else Status.SUCCEEDED,
        )
        for i in range(1050)
    ]
    transaction_store(services).add_many(rows)
    expected = {public_id(t.mailbox_id, t.id) for t in rows}

    listed = [item["id"] for item in list_all({"pageSize": "100"})]
    assert len(listed) == 1050 and set(listed) == expected

    failed = [item["id"] for item in list_all({"status": "failed", "pageSize": "7"})]
    assert sorted(failed) == sorted(public_id(t.mailbox_id, t.id) for t in rows if t.status is Status.FAILED)

    status, page = get(function_app.manage_transactions_list, {"pageSize": "1000"})
    assert status == 200 and len(page["items"]) == 1000 and page["continuationToken"]
    _batch_delete_transactions(services)  # (the per-test cleanup deletes row by row: slow for 1,155 rows)


def _batch_delete_transactions(services) -> None:
    from shared.names import TRANSACTIONS_TABLE

    table = services.store.table(TRANSACTIONS_TABLE)
    keys: dict[str, list[dict]] = {}
    for entity in table.query_entities("", select=["PartitionKey", "RowKey"]):
        keys.setdefault(entity["PartitionKey"], []).append(entity)
    for entities in keys.values():
        for start in range(0, len(entities), 100):
            table.submit_transaction([("delete", e) for e in entities[start : start + 100]])


def test_filters_by_mailbox_status_and_date_range(services):
    store = transaction_store(services)
    rows = [
        tx(MAILBOXES[0], DAY),
        tx(MAILBOXES[0], DAY + timedelta(days=1), Status.SUCCEEDED),
        tx(MAILBOXES[0], DAY + timedelta(days=2)),
        tx(MAILBOXES[1], DAY + timedelta(days=1)),
    ]
    store.add_many(rows)

    def ids(params):
        return [i["id"] for i in list_all(params)]

    assert ids({"mailbox": MAILBOXES[0]}) == [public_id(t.mailbox_id, t.id) for t in rows[:3]]
    assert ids({"status": "failed", "mailbox": MAILBOXES[0], "since": "2026-11-02"}) == [
        public_id(MAILBOXES[0], rows[2].id)
    ]
    assert len(ids({"since": "2026-11-02T00:00:00Z", "until": "2026-11-03"})) == 2  # until is exclusive
    assert ids({"status": "succeeded"}) == [public_id(MAILBOXES[0], rows[1].id)]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "broken"},
        {"since": "yesterday"},
        {"until": "2026-13-45"},
        {"since": "2026-11-05", "until": "2026-11-01"},
        {"pageSize": "0"},
        {"pageSize": "1001"},
        {"pageSize": "ten"},
        {"continuationToken": "!!not-a-token"},
        {"mailbox": "a/b"},
        {"stauts": "failed"},
        {"status": "failed", "mailbx": MAILBOXES[0]},
    ],
)
def test_malformed_list_filters_answer_400_with_the_reason(services, params):
    status, body = get(function_app.manage_transactions_list, params)
    assert status == 400 and body["error"]


def test_point_read_and_unknown_ids(services):
    row = tx(MAILBOXES[0], DAY, payload={"queue": NOTIFICATIONS_QUEUE, "message": {"eventId": "e1"}})
    transaction_store(services).add(row)

    status, body = get(function_app.manage_transaction, route_params={"id": public_id(MAILBOXES[0], row.id)})
    assert status == 200 and body["status"] == "failed" and body["payload"]["message"]["eventId"] == "e1"

    for unknown in (public_id(MAILBOXES[1], row.id), "garbage", "20261101T000000000000Z-abc.%%%"):
        assert get(function_app.manage_transaction, route_params={"id": unknown})[0] == 404


def test_retry_all_and_archive_all_act_on_exactly_the_matching_rows(graph, dime, services):
    from tests.conftest import track

    person = graph.add_user(mail="ann@contoso.com")
    other = graph.add_user(mail="bob@contoso.com")
    track(services, person)
    track(services, other)
    store = transaction_store(services)

    def failed_notification(user, when):
        event = graph.create_event(user["id"])
        message = {"mailboxId": user["id"], "eventId": event["id"], "changeType": "created", "changeKey": "x"}
        row = tx(user["id"], when, payload={"queue": NOTIFICATIONS_QUEUE, "message": message})
        store.add(row)
        return row

    old = failed_notification(person, DAY - timedelta(days=10))
    recent = [failed_notification(person, DAY + timedelta(hours=h)) for h in range(3)]
    others = [failed_notification(other, DAY + timedelta(hours=h)) for h in range(2)]

    status, body = post(
        function_app.manage_transactions_retry,
        {"all": True, "filter": {"mailbox": person["id"], "since": "2026-11-01"}},
    )

    assert status == 200 and body["matched"] == 3 and body["succeeded"] == 3
    assert {i["id"] for i in body["items"]} == {public_id(t.mailbox_id, t.id) for t in recent}
    assert len(dime.appointments) == 3
    still_failed = {public_id(t.mailbox_id, t.id) for t in store.failed()}
    assert still_failed == {public_id(t.mailbox_id, t.id) for t in [old, *others]}

    status, body = post(function_app.manage_transactions_archive, {"all": True, "filter": {"mailbox": other["id"]}})

    assert status == 200 and body["matched"] == 2
    assert {public_id(t.mailbox_id, t.id) for t in store.failed()} == {public_id(old.mailbox_id, old.id)}
    assert {t.status for t in store.of_mailbox(other["id"])} == {Status.ARCHIVED}
    archived = list_all({"status": "archived"})
    assert len(archived) == 2

    status, body = post(function_app.manage_transactions_archive, {"ids": [public_id(old.mailbox_id, old.id)]})
    assert status == 200 and list(store.failed()) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        {},
        {"ids": []},
        {"ids": "x"},
        {"all": "yes"},
        {"ids": ["a"], "all": True},
        {"all": True, "filter": {"status": "nope"}},
        {"all": True, "filter": {"since": "soon"}},
        {"all": True, "filter": {"colour": "red"}},
        {"all": True, "dryRun": True},
        {"ids": ["a"], "filter": {}},
        {"all": True, "filter": {"status": "succeeded"}},
        {"all": True, "filter": {"status": "pending"}},
    ],
)
def test_malformed_retry_and_archive_bodies_answer_400(services, body):
    assert post(function_app.manage_transactions_retry, body)[0] == 400
    assert post(function_app.manage_transactions_archive, body)[0] == 400


def test_unknown_ids_answer_404_and_change_nothing(services):
    row = tx(MAILBOXES[0], DAY)
    transaction_store(services).add(row)
    status, body = post(function_app.manage_transactions_archive, {"ids": [public_id(MAILBOXES[0], row.id), "missing"]})
    assert status == 404 and body["unknownIds"] == ["missing"]
    assert len(list(transaction_store(services).failed())) == 1


def test_links_status_and_health(graph, dime, services, monkeypatch):
    from tests.conftest import notification_item, track
    from tests.host import run_queue

    person = graph.add_user(mail="kim@contoso.com")
    track(services, person)
    event = graph.create_event(person["id"])
    body = json.dumps({"value": [notification_item(person["id"], event["id"], "created", event["changeKey"])]})
    function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body.encode()))
    run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    services.store.table(SYNCSTATE_TABLE).upsert_entity(
        {"PartitionKey": person["id"], "RowKey": "delta", "LastRunAt": "2026-11-22T12:00:00+00:00", "Result": "ok"}
    )
    services.queues.client(NOTIFICATIONS_QUEUE + POISON_SUFFIX).send_message(b"{}")
    transaction_store(services).add(tx(MAILBOXES[0], DAY))

    status, links = get(function_app.manage_links, {"mailbox": person["id"]})
    assert status == 200 and [link["eventId"] for link in links["items"]] == [event["id"]]
    assert get(function_app.manage_links, {"mailbox": MAILBOXES[0]})[1]["items"] == []

    status, body = get(function_app.manage_status)
    assert status == 200
    [mailbox] = body["mailboxes"]
    assert mailbox["mailboxId"] == person["id"]
    assert mailbox["syncState"][0]["rowKey"] == "delta" and mailbox["syncState"][0]["result"] == "ok"
    assert mailbox["syncState"][0]["lastRunAt"] == "2026-11-22T12:00:00Z"  # camelCase, ISO 8601 UTC
    assert "RowKey" not in json.dumps(body) and "PartitionKey" not in json.dumps(body)
    assert body["queues"][NOTIFICATIONS_QUEUE + POISON_SUFFIX] == 1
    assert body["failedTransactions"] == {"total": 1, "byCode": {"DIME_REJECTED": 1}}

    for name, value in settings_env(_azurite(services), graph.base_url, dime.base_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(admin_transactions, "storage_probe", admin_transactions.StorageProbe())
    status, body = get(function_app.health)
    assert status == 200 and body == {"status": "ok", "checks": {"settings": "ok", "keyVault": "ok", "storage": "ok"}}
    # As deployed: the services are built from the app settings, and one is missing.
    from shared.services import Services
    from shared.settings import load_settings

    monkeypatch.setattr(function_app, "services", lambda: Services(load_settings()))
    monkeypatch.delenv("DIME_API_KEY")
    status, body = get(function_app.health)
    assert status == 503 and body["failed"] == ["settings", "storage"] and "DIME" not in json.dumps(body)


def test_health_names_an_unresolved_key_vault_reference_without_its_value(services, monkeypatch):
    for name, value in settings_env(_azurite(services), "http://127.0.0.1:1", "http://127.0.0.1:2").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DIME_API_KEY", "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/dime-key)")
    status, body = get(function_app.health)
    assert status == 503 and body["checks"]["keyVault"] == "unresolved" and "keyVault" in body["failed"]
    assert "vault.azure.net" not in json.dumps(body) and "dime-key" not in json.dumps(body)


def test_health_reports_storage_that_does_not_answer_and_caches_the_probe(services, monkeypatch):
    for name, value in settings_env(_azurite(services), "http://127.0.0.1:1", "http://127.0.0.1:2").items():
        monkeypatch.setenv(name, value)
    calls = []

    def down():
        calls.append(1)
        raise ConnectionError("storage is down")

    monkeypatch.setattr(services.store, "ping", down)
    monkeypatch.setattr(admin_transactions, "storage_probe", admin_transactions.StorageProbe())
    for _ in range(5):
        status, body = get(function_app.health)
        assert status == 503 and body["failed"] == ["storage"] and body["checks"]["storage"] == "unavailable"
    assert len(calls) == 1  # cached: a probe hammering /api/health costs one storage call per few seconds


def _azurite(services):
    class _Conn:
        connection_string = services.settings.storage.connection_string

    return _Conn()


def test_admin_routes_are_guarded_by_the_app_and_health_is_anonymous():
    from tests.unit.test_function_app import indexed_functions

    routes = {}
    for function in indexed_functions():
        trigger = function.get_trigger()
        if trigger.type == "httpTrigger":
            routes[trigger.route] = str(trigger.auth_level)
    for route in ("transactions", "transactions/{id}", "transactions/retry", "transactions/archive", "links", "status"):
        # anonymous to the host, guarded by the app (tests/e2e/test_management_auth.py)
        assert routes["manage/" + route].endswith("ANONYMOUS"), route
    assert routes["health"].endswith("ANONYMOUS")


# Bounded, eligible-only bulk operations; UPN filters; unknown parameters ------------------------------


def test_archiving_or_rerunning_succeeded_history_is_refused(services):
    store = transaction_store(services)
    done = tx(MAILBOXES[0], DAY, Status.SUCCEEDED)
    store.add(done)
    for function in (function_app.manage_transactions_retry, function_app.manage_transactions_archive):
        status, body = post(function, {"ids": [public_id(MAILBOXES[0], done.id)]})
        assert status == 409 and body["refusedIds"] == [public_id(MAILBOXES[0], done.id)]
    assert store.get(MAILBOXES[0], done.id).status is Status.SUCCEEDED
    status, body = post(function_app.manage_transactions_archive, {"all": True, "filter": {"status": "archived"}})
    assert status == 400 and "failed" in body["error"]


def test_a_retried_success_carries_no_stale_error(graph, dime, services):
    from tests.conftest import track

    person = graph.add_user(mail="ann@contoso.com")
    track(services, person)
    event = graph.create_event(person["id"])
    message = {"mailboxId": person["id"], "eventId": event["id"], "changeType": "created", "changeKey": "x"}
    row = tx(person["id"], DAY, payload={"queue": NOTIFICATIONS_QUEUE, "message": message}, message="boom")
    transaction_store(services).add(row)

    status, body = post(function_app.manage_transactions_retry, {"ids": [public_id(person["id"], row.id)]})

    assert status == 200 and body["succeeded"] == 1
    [item] = body["items"]
    assert item["status"] == "succeeded" and item["errorCode"] is None and item["message"] is None
    assert item["createdAt"].endswith("Z") and item["updatedAt"].endswith("Z")  # ISO 8601 UTC


def test_mailbox_filters_accept_a_upn(graph, services):
    from tests.conftest import track

    person = graph.add_user(mail="ann@contoso.com", upn="ann@contoso.onmicrosoft.com")
    track(services, person)
    mine, other = tx(person["id"], DAY), tx(MAILBOXES[1], DAY)
    transaction_store(services).add_many([mine, other])

    status, body = get(function_app.manage_transactions_list, {"mailbox": "Ann@contoso.onmicrosoft.com"})
    assert status == 200 and [i["id"] for i in body["items"]] == [public_id(person["id"], mine.id)]
    assert get(function_app.manage_links, {"mailbox": "ann@contoso.onmicrosoft.com"})[0] == 200
    assert get(function_app.manage_transactions_list, {"mailbox": "nobody@contoso.com"})[0] == 404
    status, body = post(
        function_app.manage_transactions_archive, {"all": True, "filter": {"mailbox": "ann@contoso.onmicrosoft.com"}}
    )
    assert status == 200 and body["archived"] == [public_id(person["id"], mine.id)]


def test_unknown_parameters_on_links_status_and_one_transaction_are_400(services):
    assert get(function_app.manage_links, {"mailboxx": MAILBOXES[0]})[0] == 400
    assert get(function_app.manage_status, {"verbose": "1"})[0] == 400
    assert get(function_app.manage_transaction, {"full": "1"}, route_params={"id": "x"})[0] == 400
    assert get(function_app.manage_status, {"code": "host-key"})[0] == 200


def test_all_beyond_a_page_answers_202_and_the_bulk_queue_works_through_every_row(services):
    from shared.names import BULK_QUEUE
    from tests.host import run_queue

    store = transaction_store(services)
    rows = [tx(MAILBOXES[i % 2], DAY + timedelta(seconds=i)) for i in range(250)]
    store.add_many(rows)

    status, body = post(function_app.manage_transactions_archive, {"all": True, "filter": {"since": "2026-11-01"}})
    assert status == 202 and body["queued"] is True
    assert len(list(store.failed())) == 250  # nothing done inline

    run = run_queue(services, BULK_QUEUE, function_app.bulk_transactions)

    assert run.succeeded == 3 and run.failed == 0  # 100 + 100 + 50 rows, one message each
    assert list(store.failed()) == []
    assert {t.status for t in store.of_mailbox(MAILBOXES[0])} == {Status.ARCHIVED}


def test_a_bulk_retry_runs_each_page_of_notifications_as_one_batch(graph, dime, services):
    """A page of failed notifications is one batch of the pipeline: one /import per page (formerly
    one per row), and a row Dime.Scheduler still refuses stays failed alone, its attempt counted."""
    from shared.core.ids import appointment_guid
    from shared.names import BULK_QUEUE
    from tests.conftest import TENANT_ID, track
    from tests.host import run_queue

    people = [graph.add_user(mail=f"p{n}@contoso.com") for n in range(2)]
    for person in people:
        track(services, person)
    store = transaction_store(services)
    rows = []
    for i in range(120):
        person = people[i % 2]
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1, hours=i)
        event = graph.create_event(
            person["id"],
            subject=f"Job {i}",
            start=start.strftime("%Y-%m-%dT%H:%M:%S"),
            end=(start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
        )
        message = {"mailboxId": person["id"], "eventId": event["id"], "changeType": "created", "changeKey": "x"}
        rows.append(
            tx(person["id"], DAY + timedelta(seconds=i), payload={"queue": NOTIFICATIONS_QUEUE, "message": message})
        )
    store.add_many(rows)
    refused = rows[7]
    refused_guid = appointment_guid(TENANT_ID, refused.mailbox_id, refused.payload["message"]["eventId"])
    dime.refuse_call(refused_guid, "Invalid parameter", "Location is not a known site.")
    dime.reset_calls()

    status, _ = post(function_app.manage_transactions_retry, {"all": True})
    assert status == 202
    run = run_queue(services, BULK_QUEUE, function_app.bulk_transactions)

    assert run.failed == 0 and len(dime.appointments) == 119
    imports = [r for r in dime.requests if r.path == "/import"]
    # page 1: 100 calls, refused, halved five times (2 imports each) down to 4 tried call by call;
    # page 2: one. Formerly one import per row: 120.
    assert len(imports) <= 1 + 5 * 2 + 4 + 1
    still = list(store.failed())
    assert [(t.id, t.attempts, t.error_code) for t in still] == [(refused.id, 2, "DIME_REJECTED")]  # 1 + this retry
