"""Table transactions (entity group transactions) written as one multipart body in a few string
operations, instead of through the SDK's generic multipart machinery.

Why: `TableClient.submit_transaction` builds and parses each part with the `email` package and a
thread pool per call: about 48 ms of Python CPU for a batch of 100 upserts on our 2-core machine,
which made table batches the largest CPU cost of a backfill (three per page of 100 events).
This module writes the same request (`POST {account}/$batch`, a changeset of `application/http`
parts, each the request the SDK would send: same URL, headers and entity JSON, from the SDK's own
entity serialisation; "Performing entity group transactions", Table service REST API, Microsoft
Learn) and sends it through the client's own pipeline (authentication, retries, transport).

Only the clean success is handled here: an answer other than 202 with one 2xx part per operation
returns False, and the caller sends the same operations again through `submit_transaction`,
which raises the SDK's exact error. That is safe because a transaction is atomic (a failed one
applied nothing). Transport errors propagate as they would from the SDK. Handled: `create`,
`upsert` (merge or replace), `update` and `delete` (unconditional or If-Match an etag); anything
else goes to the SDK. A bulk retry's claims (conditional merges) and index deletes made the SDK's
multipart machinery its largest CPU cost (scripts/bench_bulk.py under py-spy).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)
_warned: set[int] = set()  # outer statuses already logged (once per process each)

# One status line per answered part ("HTTP/1.1 204 No Content"); a JSON body is one line, so
# it cannot hold a line of its own starting like this.
_STATUS_LINE = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
# A part's status line and its header lines (up to the blank line); the ETag among them.
_PART = re.compile(rb"^HTTP/1\.1 (\d{3})[^\r\n]*\r?\n((?:[^\r\n]+\r?\n)*)", re.MULTILINE)
_ETAG = re.compile(rb"^ETag:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def send_batch(client: Any, operations: list[tuple[Any, ...]]) -> list[str | None] | None:
    """Send `operations` (all of one partition) as one transaction; the ETag of each (None for
    a delete) when every one was applied, None when the SDK must send them again for its error
    (nothing was applied)."""
    request = batch_request(client, operations)
    if request is None:
        return None
    # The client's pipeline (auth, retries, transport); streamed, as the SDK does, so that no policy
    # tries to decode the multipart answer.
    response = client._client.send_request(request, stream=True)
    answer = response.read()  # read in full either way: the connection goes back to the pool
    if not batch_applied(response.status_code, answer, len(operations)):
        return None
    return batch_etags(answer)


async def send_batch_async(client: Any, operations: list[tuple[Any, ...]]) -> list[str | None] | None:
    """`send_batch` through an `azure.data.tables.aio.TableClient`: the same request, the same reading
    of the answer (one request format, two transports). The ETag of each operation when every
    one was applied (None for a delete), else None (the SDK must send them again)."""
    request = batch_request(client, operations)
    if request is None:
        return None
    response = await client._client.send_request(request, stream=True)
    answer = await response.read()
    if not batch_applied(response.status_code, answer, len(operations)):
        return None
    return batch_etags(answer)


def batch_request(client: Any, operations: list[tuple[Any, ...]]) -> Any | None:
    """The `$batch` request for `operations` (all of one partition), or None when they are not the
    plain kind this module writes (the SDK sends those)."""
    from azure.core.rest import HttpRequest
    from azure.data.tables._serialize import _add_entity_properties

    if not operations or len(operations) > 100 or any(len(op) not in (2, 3) for op in operations):
        return None
    if getattr(client, "_cosmos_endpoint", False):  # Cosmos DB's Table API takes merges differently
        return None
    partition = operations[0][1].get("PartitionKey")
    base = f"{client.scheme}://{client._primary_hostname}"  # what TableBatchOperations uses
    table = quote(client.table_name, safe="")
    version = client.api_version
    date = formatdate(usegmt=True)
    changeset, batch = f"changeset_{uuid.uuid4()}", f"batch_{uuid.uuid4()}"
    parts: list[str] = []
    for number, operation in enumerate(operations):
        kind, entity = str(operation[0]).lower(), operation[1]
        plan = _plan(kind, operation[2] if len(operation) == 3 else {})
        if plan is None or entity.get("PartitionKey") != partition or "RowKey" not in entity:
            return None
        method, if_match = plan
        keys = f"PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}'"
        if method == "POST":
            line, accept = f"POST {base}/{table} HTTP/1.1", "application/json;odata=minimalmetadata"
        elif method == "DELETE":
            line, accept = f"DELETE {base}/{table}({keys}) HTTP/1.1", "application/json;odata=minimalmetadata"
        else:
            line, accept = f"{method} {base}/{table}({keys}) HTTP/1.1", "application/json"
        condition = f"If-Match: {if_match}\r\n" if if_match is not None else ""
        if method == "DELETE":  # no body, as the SDK's delete part
            parts.append(
                f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                f"Content-ID: {number}\r\n\r\n{line}\r\nx-ms-version: {version}\r\nDataServiceVersion: 3.0\r\n"
                f"Accept: {accept}\r\n{condition}x-ms-date: {date}\r\nDate: {date}\r\n\r\n\r\n"
            )
            continue
        body = json.dumps(_add_entity_properties(entity))
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {number}\r\n\r\n{line}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body.encode('utf-8'))}\r\nx-ms-version: {version}\r\n"
            f"DataServiceVersion: 3.0\r\nAccept: {accept}\r\n{condition}x-ms-date: {date}\r\nDate: {date}\r\n\r\n"
            f"{body}\r\n"
        )
    content = (
        f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        + "".join(parts)
        + f"--{changeset}--\r\n\r\n--{batch}--\r\n"
    ).encode("utf-8")
    return HttpRequest(
        "POST",
        f"{base}/$batch",
        headers={
            "x-ms-version": version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=content,
    )


def batch_applied(status_code: int, answer: bytes, operations: int) -> bool:
    """Whether the answer to a `$batch` says every one of `operations` was applied."""
    if status_code != 202:
        if status_code != 404 and status_code not in _warned:  # 404: the table is missing
            _warned.add(status_code)
            log.warning(
                "a hand-written table transaction was answered %d: sent again through the SDK (logged once)",
                status_code,
            )
        return False
    statuses = [int(code) for code in _STATUS_LINE.findall(answer)]
    return len(statuses) == operations and all(200 <= code < 300 for code in statuses)


def _plan(kind: str, options: dict[str, Any]) -> tuple[str, str | None] | None:
    """(HTTP method, If-Match or None) of one operation as the SDK's `TableBatchOperations`
    sends it, or None for what this module leaves to the SDK: `create`; `upsert` (MERGE by
    default: PATCH, REPLACE: PUT, never conditional); `update` (the same methods, If-Match the
    etag under IfNotModified, `*` unconditionally); `delete` (If-Match likewise)."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    allowed = {"create": set(), "upsert": {"mode"}, "update": {"mode", "etag", "match_condition"}}
    allowed["delete"] = {"etag", "match_condition"}
    if kind not in allowed or not set(options) <= allowed[kind]:
        return None
    if kind == "create":
        return "POST", None
    mode = options.get("mode", UpdateMode.MERGE)
    if kind in ("upsert", "update") and mode not in (UpdateMode.MERGE, UpdateMode.REPLACE):
        return None
    method = "DELETE" if kind == "delete" else "PATCH" if mode == UpdateMode.MERGE else "PUT"
    if kind == "upsert":
        return method, None
    condition, etag = options.get("match_condition"), options.get("etag")
    if condition in (None, MatchConditions.Unconditionally) and etag is None:
        return method, "*"
    if condition is MatchConditions.IfNotModified and etag:
        return method, str(etag)
    return None  # another condition (or an etag without one): the SDK's rules


def batch_etags(answer: bytes) -> list[str | None]:
    """The ETag of each answered part, in order (None for a part without one: a delete)."""
    etags: list[str | None] = []
    for part in _PART.finditer(answer):
        found = _ETAG.search(part.group(2))
        etags.append(found.group(1).decode("latin-1").strip() if found else None)
    return etags


def _key(value: Any) -> str:
    """A key inside the entity URL, as the SDK writes it: quotes doubled, then percent-encoded."""
    return quote(str(value).replace("'", "''"), safe="")
