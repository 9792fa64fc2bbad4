"""The admin API: see every transaction, retry or archive them, links, status, health.

JSON in and out. Lists are paged: `pageSize` (default 100, at most 1000) and an opaque
`continuationToken` (the table's own token, base64url-encoded); a page without `continuationToken`
is the last. Malformed input answers 400 with the reason, unknown ids 404.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.adapters.storage.history_store import history_store
from shared.adapters.storage.transactions_store import TransactionStore, transaction_store
from shared.core.api_format import camel, iso_utc, page, unknown_names, unknown_params_reason
from shared.core.resources import Resource
from shared.core.runs import DIME_RECONCILE, DIME_SCHEDULER_SCOPE
from shared.core.transaction_query import (
    FILTER_FIELDS,
    QueryError,
    TransactionFilter,
    decode_token,
    encode_token,
    is_key_safe,
    parse_filter,
    parse_page_size,
    parse_public_id,
    public_id,
)
from shared.core.transactions import Status, Transaction
from shared.names import ALL_QUEUES, BULK_QUEUE, LINKS_TABLE, SYNCSTATE_TABLE
from shared.services import Services
from shared.usecases.admin.archive import archive, eligible_statuses
from shared.usecases.http_answer import HttpAnswer
from shared.usecases.retry import retry_transaction
from shared.usecases.timer_runs import TIMER_KINDS

log = logging.getLogger(__name__)

MAX_IDS = 1000
_LOOKS_LIKE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
MAX_FIELD_CHARS = 500


def _json(status: int, body: Any) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(body, default=_jsonable), "application/json; charset=utf-8")


def _error(status: int, reason: str) -> HttpAnswer:
    return _json(status, {"error": reason})


def people_of(services: Services) -> dict[str, Resource]:
    """Every onboarded person by mailbox id: one query of the resources partition per page drawn,
    so a row written before names were stored (or by a path that had no person at hand) still
    shows one, and a renamed person shows the new name."""
    return {r.object_id: r for r in services.store.list_resources()}


def person_json(
    mailbox_id: str, stored: tuple[str | None, str | None], people: Mapping[str, Resource]
) -> dict[str, Any]:
    """personName and upn of a row: the directory's as onboarding read it, else what the row kept."""
    resource = people.get(mailbox_id)
    name = (resource.display_name if resource else None) or stored[0]
    upn = (resource.upn if resource else None) or stored[1]
    return {"personName": name or None, "upn": upn or None}


def transaction_json(
    transaction: Transaction, *, detail: bool = False, people: Mapping[str, Resource] | None = None
) -> dict[str, Any]:
    body = {
        "id": public_id(transaction.mailbox_id, transaction.id),
        "mailboxId": transaction.mailbox_id,
        "direction": transaction.direction,
        "operation": transaction.operation,
        "status": transaction.status.value,
        "eventId": transaction.event_id,
        "appointmentGuid": transaction.appointment_guid,
        "reason": transaction.reason,
        "errorCode": transaction.error_code,
        "message": transaction.message,
        "attempts": transaction.attempts,
        "nextAttemptAt": iso_utc(transaction.next_attempt_at),
        "createdAt": iso_utc(transaction.created_at),
        "updatedAt": iso_utc(transaction.updated_at),
        "subject": transaction.subject,
        "start": iso_utc(transaction.start),
        **person_json(transaction.mailbox_id, (transaction.person, transaction.upn), people or {}),
    }
    if detail:
        body["payload"] = transaction.payload
    return body


LIST_PARAMS = (*FILTER_FIELDS, "pageSize", "continuationToken")
LINK_PARAMS = ("mailbox", "pageSize", "continuationToken")
SELECTION_FIELDS = ("ids", "all", "filter")
INLINE_LIMIT = 100  # "all" beyond this many rows answers 202 and works through the bulk queue


async def resolve_mailbox_filter(services: Services, mailbox: str | None) -> str | None:
    """A `mailbox` filter as the object id the tables are keyed by: an object id as given, a UPN or
    an unambiguous e-mail resolved like on every {mailbox} route (QueryError 404/409 otherwise)."""
    if mailbox is None or "@" not in mailbox:
        return mailbox
    from shared.core.resource_requests import Conflict
    from shared.usecases.admin.resources import find_resource

    try:
        resource = await find_resource(services, mailbox)
    except Conflict as error:
        raise FilterProblem(409, str(error)) from None
    if resource is None:
        raise FilterProblem(404, f"no onboarded mailbox {mailbox[:320]}")
    return resource.object_id


class FilterProblem(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def _resolved(services: Services, query: TransactionFilter) -> TransactionFilter:
    return replace(query, mailbox=await resolve_mailbox_filter(services, query.mailbox))


# Transactions -------------------------------------------------------------------------------------


async def list_transactions(params: Mapping[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/transactions?status=&mailbox=&since=&until=&pageSize=&continuationToken="""
    try:
        if reason := unknown_params_reason(params, LIST_PARAMS):
            raise QueryError(reason)
        query = parse_filter({k: params[k] for k in FILTER_FIELDS if k in params})
        size = parse_page_size(params.get("pageSize"))
        token = decode_token(params.get("continuationToken"))
        query = await _resolved(services, query)
    except QueryError as error:
        return _error(400, str(error))
    except FilterProblem as problem:
        return _error(problem.status, str(problem))
    items, next_token = await asyncio.to_thread(transaction_store(services).page, query, size, token)
    people = await asyncio.to_thread(people_of, services)
    return _json(200, page([transaction_json(t, people=people) for t in items], encode_token(next_token)))


MAX_COUNT = 100_000


async def count_transactions(params: Mapping[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/transactions/count?<the list's filters>: {"count": n, "capped": bool}; what the
    console shows before "retry/archive all matching", and the Overview's numbers."""
    try:
        if reason := unknown_params_reason(params, FILTER_FIELDS):
            raise QueryError(reason)
        query = await _resolved(services, parse_filter({k: v for k, v in params.items() if k in FILTER_FIELDS}))
    except QueryError as error:
        return _error(400, str(error))
    except FilterProblem as problem:
        return _error(problem.status, str(problem))
    total = await asyncio.to_thread(transaction_store(services).count, query, MAX_COUNT)
    return _json(200, {"count": total, "capped": total >= MAX_COUNT})


def get_transaction(transaction_id: str, params: Mapping[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/transactions/{id}: a point read."""
    if reason := unknown_params_reason(params, ()):
        return _error(400, reason)
    keys = parse_public_id(transaction_id or "")
    found = transaction_store(services).get(*keys) if keys else None
    if found is None:
        return _error(404, "no such transaction")
    return _json(200, transaction_json(found, detail=True, people=people_of(services)))


@dataclass(frozen=True)
class Selection:
    ids: list[str] | None
    query: TransactionFilter | None
    raw_filter: dict[str, Any] | None = None  # as given, for the bulk queue


def parse_selection(body: bytes, operation: str) -> Selection:
    """{"ids": [...]} or {"all": true, "filter": {status, mailbox, since, until}}.

    "all" applies to failed rows (default), and for a retry to archived rows too: archiving or
    re-running succeeded (or pending, skipped) history is refused."""
    try:
        document = json.loads(body or b"")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise QueryError("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise QueryError('body must be a JSON object: {"ids": [...]} or {"all": true, "filter": {...}}')
    if unknown := unknown_names(document, SELECTION_FIELDS, host=False):
        raise QueryError(f"unknown field(s): {', '.join(n[:40] for n in unknown)} (allowed: ids, all, filter)")
    ids, everything = document.get("ids"), document.get("all")
    if (ids is None) == (everything is None):
        raise QueryError('give either "ids" or "all": true')
    if ids is not None:
        if "filter" in document:
            raise QueryError('"filter" goes with "all", not with "ids"')
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise QueryError('"ids" must be a non-empty list of transaction ids')
        if len(ids) > MAX_IDS:
            raise QueryError(f'at most {MAX_IDS} "ids" at once (use "all" with a filter)')
        return Selection(list(dict.fromkeys(ids)), None)
    if everything is not True:
        raise QueryError('"all" must be true')
    raw_filter = document.get("filter") or {}
    if not isinstance(raw_filter, dict):
        raise QueryError('"filter" must be an object')
    query = parse_filter(raw_filter, default_status=Status.FAILED)
    if query.status not in eligible_statuses(operation):
        allowed = " or ".join(s.value for s in eligible_statuses(operation))
        given = query.status.value if query.status else "every"
        raise QueryError(f'"all" can {operation} {allowed} transactions only, not {given} ones')
    return Selection(None, query, raw_filter)


def _selected(selection: Selection, store: TransactionStore, operation: str) -> list[Transaction] | HttpAnswer:
    if selection.query is not None:
        return list(itertools.islice(store.matching(selection.query), INLINE_LIMIT + 1))
    found: list[Transaction] = []
    unknown: list[str] = []
    for item in selection.ids or []:
        keys = parse_public_id(item)
        transaction = store.get(*keys) if keys else None
        if transaction is None:
            unknown.append(item)
        else:
            found.append(transaction)
    if unknown:
        return _json(404, {"error": "no such transaction(s); nothing was done", "unknownIds": unknown})
    refused = [t for t in found if t.status not in eligible_statuses(operation)]
    if refused:
        allowed = " or ".join(s.value for s in eligible_statuses(operation))
        return _json(
            409,
            {
                "error": f"only {allowed} transactions can be {operation}d; nothing was done",
                "refusedIds": [public_id(t.mailbox_id, t.id) for t in refused],
            },
        )
    return found


async def _select(body: bytes, services: Services, operation: str) -> tuple[Selection, list[Transaction]] | HttpAnswer:
    try:
        selection = parse_selection(body, operation)
        if selection.query is not None:
            selection = replace(selection, query=await _resolved(services, selection.query))
    except QueryError as error:
        return _error(400, str(error))
    except FilterProblem as problem:
        return _error(problem.status, str(problem))
    selected = await asyncio.to_thread(_selected, selection, transaction_store(services), operation)
    if isinstance(selected, HttpAnswer):
        return selected
    return selection, selected


def _queue_bulk(services: Services, operation: str, selection: Selection) -> HttpAnswer:
    """More than a page's worth: the bulk queue works through them (202)."""
    from shared.usecases.admin.bulk_transactions import bulk_message

    assert selection.query is not None
    message = bulk_message(operation, selection.query)
    services.queues.send(BULK_QUEUE, message)
    return _json(
        202,
        {
            "queued": True,
            "operation": operation,
            "reason": f"more than {INLINE_LIMIT} transactions match: they are {operation}d through the "
            f"{BULK_QUEUE} queue; follow them with GET .../transactions?status=failed",
        },
    )


async def retry_transactions(body: bytes, services: Services) -> HttpAnswer:
    """POST {prefix}/transactions/retry: runs them now, whatever their code or attempt count."""
    chosen = await _select(body, services, "retry")
    if isinstance(chosen, HttpAnswer):
        return chosen
    selection, selected = chosen
    if len(selected) > INLINE_LIMIT:
        return await asyncio.to_thread(_queue_bulk, services, "retry", selection)
    store = transaction_store(services)
    results = []
    counts = Counter[str]()
    for transaction in selected:
        outcome = await retry_transaction(services, transaction, store)
        result = "succeeded" if outcome.transaction.status is Status.SUCCEEDED else "failed"
        result = result if outcome.retried else "not-retryable"
        counts[result] += 1
        results.append({**transaction_json(outcome.transaction), "result": result})
    return _json(200, {"matched": len(selected), **counts, "items": results})


async def archive_transactions(body: bytes, services: Services) -> HttpAnswer:
    """POST {prefix}/transactions/archive: status archived (no longer listed as failed)."""
    chosen = await _select(body, services, "archive")
    if isinstance(chosen, HttpAnswer):
        return chosen
    selection, selected = chosen
    if len(selected) > INLINE_LIMIT:
        return await asyncio.to_thread(_queue_bulk, services, "archive", selection)
    store = transaction_store(services)
    await asyncio.to_thread(archive, services, store, selected)
    return _json(200, {"matched": len(selected), "archived": [public_id(t.mailbox_id, t.id) for t in selected]})


# Links, status, health ----------------------------------------------------------------------------


async def list_links(params: Mapping[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/links?mailbox=: Outlook events and their Dime.Scheduler appointments."""
    try:
        if reason := unknown_params_reason(params, LINK_PARAMS):
            raise QueryError(reason)
        mailbox = (params.get("mailbox") or "").strip().lower() or None
        if mailbox is not None and not is_key_safe(mailbox):
            raise QueryError("mailbox is not a valid mailbox id")
        size = parse_page_size(params.get("pageSize"))
        token = decode_token(params.get("continuationToken"))
        mailbox = await resolve_mailbox_filter(services, mailbox)
    except QueryError as error:
        return _error(400, str(error))
    except FilterProblem as problem:
        return _error(problem.status, str(problem))
    return await asyncio.to_thread(_links_page, services, mailbox, size, token)


def _links_page(services: Services, mailbox: str | None, size: int, token: Any) -> HttpAnswer:
    table = services.store.table(LINKS_TABLE)
    text, parameters = ("PartitionKey eq @pk", {"pk": mailbox}) if mailbox else (None, None)
    pager = table.query_entities(text or "", parameters=parameters, results_per_page=size).by_page(
        continuation_token=token
    )
    items: list[dict[str, Any]] = []
    people = people_of(services)
    for entities in pager:
        items = [link_json(e, people) for e in entities]
        if items or not pager.continuation_token:
            break
    return _json(200, page(items, encode_token(pager.continuation_token)))


def link_json(entity: Mapping[str, Any], people: Mapping[str, Resource]) -> dict[str, Any]:
    """An Outlook-side link row (rows written before issue 19 have no Subject or Start: null)."""
    return {
        "mailboxId": entity["PartitionKey"],
        "eventId": entity.get("EventId"),
        "appointmentGuid": entity.get("AppointmentGuid"),
        "origin": entity.get("Origin"),
        "changeKey": entity.get("ChangeKey") or None,
        "resourceEmail": entity.get("ResourceEmail"),
        "syncedAt": iso_utc(entity.get("SyncedAt")),
        "subject": entity.get("Subject") or None,
        "start": iso_utc(entity.get("Start")),
        **person_json(entity["PartitionKey"], (None, None), people),
    }


def status(params: Mapping[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/status: mailboxes, their subscription and sync runs, queue depths (the
    "-poison-poison" ones too), failures, and the history the Overview draws (`history.hours`: the
    last 24 UTC hours, `history.days`: the last 14 UTC days, oldest first, each with succeeded and
    failed outcomes per direction); camelCase keys and ISO 8601 UTC times throughout."""
    if reason := unknown_params_reason(params, ()):
        return _error(400, reason)
    mailboxes = []
    for resource in services.store.list_resources():
        mailboxes.append(
            {
                "mailboxId": resource.object_id,
                "upn": resource.upn,
                "email": resource.email,
                "enabled": resource.consent.enabled,
                "subscriptionId": resource.subscription_id,
                "subscriptionExpiry": iso_utc(resource.subscription_expiry),
                "syncState": _sync_state(services, resource.object_id),
            }
        )
    queues: dict[str, int | None] = {}
    for name in ALL_QUEUES:
        try:
            queues[name] = services.queues.depth(name)
        except Exception:  # a missing queue is shown as unknown, not a failed status page
            queues[name] = None
    by_code = Counter(
        e.get("ErrorCode") or "UNKNOWN" for e in transaction_store(services).failed_entities(select=["ErrorCode"])
    )
    return _json(
        200,
        {
            "mailboxes": mailboxes,
            "queues": queues,
            "failedTransactions": {"total": sum(by_code.values()), "byCode": dict(sorted(by_code.items()))},
            "dimeReconcile": _dime_reconcile_run(services),
            # the retry, renewal, delta and reconcile timers' last runs (null before their first
            # recorded run); the delta and reconcile ones say what they handed out (usecases/fanout.py)
            "timerRuns": {kind: _dime_reconcile_run(services, kind) for kind in TIMER_KINDS},
            # Succeeded/failed outcomes per hour (24) and day (14), per direction: one range query.
            "history": history_store(services.store).summary(services.clock()),
        },
    )


def _sync_state(services: Services, mailbox_id: str) -> list[dict[str, Any]]:
    """Whatever rows the delta/reconcile runs keep under the mailbox (none is fine)."""
    try:
        table = services.store.table(SYNCSTATE_TABLE)
        rows = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": mailbox_id}))
    except Exception:
        return []
    return [_row_json(row) for row in rows]


def _dime_reconcile_run(services: Services, kind: str = DIME_RECONCILE) -> dict[str, Any] | None:
    """The last full Dime.Scheduler → Outlook reconcile (one record for every mailbox), or the last
    run of another timer that covers every mailbox (retry, renewal), in the shape of a mailbox's run
    rows; null before the first run (or when storage does not answer)."""
    from shared.adapters.storage.syncstate_store import SyncStateStore

    try:
        row = SyncStateStore(services.store).run(DIME_SCHEDULER_SCOPE, kind)
    except Exception:
        return None
    return _row_json(row) if row is not None else None


def _row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {camel(k): _short(v) for k, v in row.items() if k != "PartitionKey"}


def _short(value: Any) -> Any:
    value = _jsonable(value)
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[:MAX_FIELD_CHARS] + "…"
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, str) and _LOOKS_LIKE_TIME.match(value):
        return iso_utc(value) or value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    inner = getattr(value, "value", None)  # EntityProperty (Int64, Guid ...)
    return _jsonable(inner) if inner is not None else str(value)


HEALTH_CACHE_SECONDS = 5.0  # a probe hammering /api/health costs one storage call per 5 s


class StorageProbe:
    """Whether storage answers a cheap call (one page of one table name), cached a few seconds."""

    def __init__(self, ttl: float = HEALTH_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._last: tuple[float, bool] | None = None

    def ok(self, services: Services) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last[0] < self._ttl:
            return self._last[1]
        try:
            services.store.ping()
            answer = True
        except Exception:
            log.exception("health: storage did not answer")
            answer = False
        self._last = (now, answer)
        return answer


storage_probe = StorageProbe()


def health(get_services: Callable[[], Services], probe: StorageProbe | None = None) -> HttpAnswer:
    """GET /api/health (anonymous): which checks pass, never a value.

    settings: the services the app runs with could be built, so every setting loaded and validated
    (in Azure from the app settings; under the local runner, which hands the app its own services,
    from the runner's: the process environment is not what that app reads, so it is not judged);
    keyVault: no setting still holds an unresolved "@Microsoft.KeyVault(...)" reference; storage:
    the account answers (cached for a few seconds). 503 names the failed checks."""
    import os

    from shared.settings import unresolved_key_vault_references

    checks = {"settings": "ok", "keyVault": "ok", "storage": "ok"}
    if unresolved_key_vault_references(os.environ):
        checks["keyVault"] = "unresolved"
    try:
        services = get_services()
    except Exception:
        checks["settings"] = "invalid"
        checks["storage"] = "unknown"  # no usable connection to try
    else:
        if not (probe or storage_probe).ok(services):
            checks["storage"] = "unavailable"
    failed = sorted(name for name, value in checks.items() if value != "ok")
    if failed:
        return _json(503, {"status": "degraded", "failed": failed, "checks": checks})
    return _json(200, {"status": "ok", "checks": checks})
