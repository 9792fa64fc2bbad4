"""``$batch`` of ``FakeGraph``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from .._http import RecordedRequest, Request, Response
from .base import GraphBase, _mailbox_of
from .common import (
    MAX_BATCH,
    GraphError,
)


class BatchMixin(GraphBase):
    """JSON ``$batch`` of up to 20 members, each served (faults included) like a top-level request.

    Members may address different users: each is routed by its own URL ("Combine multiple HTTP
    requests using JSON batching", learn.microsoft.com/graph/json-batching: one batch reads a
    drive, Planner tasks and a group's calendar), and each is throttled on its own
    (https://learn.microsoft.com/graph/json-batching: "each request
    is evaluated individually against throttling limits", so a 429 can hide inside a 200), so
    ``fail_next(path_contains=...)`` throttles one member of one mailbox alone. A mailbox over its
    4 concurrent requests (counted across every client, see base.MAILBOX_CONCURRENCY) has its
    members answer 429 MailboxConcurrency with Retry-After inside the 200."""

    # ---------------------------------------------------------------- $batch
    def _batch(self, request: Request) -> Response:
        body = request.json
        members = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(members, list) or not members:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(members) > MAX_BATCH:
            raise GraphError(400, "BadRequest", f"Limit of {MAX_BATCH} requests exceeded.")
        ids = [str(m.get("id")) for m in members if isinstance(m, dict)]
        if len(ids) != len(members) or len(set(ids)) != len(ids) or any(i in ("", "None") for i in ids):
            raise GraphError(400, "BadRequest", "Each batch member needs a unique id.")
        responses = []
        for member in members:
            responses.append(self._batch_member(request, member))
        return Response(200, {"responses": responses})

    def _batch_member(self, envelope: Request, member: dict[str, Any]) -> dict[str, Any]:
        url = str(member.get("url") or "")
        if url.lower().startswith(("http://", "https://")):
            parts = urlsplit(url)
            url = parts.path + (f"?{parts.query}" if parts.query else "")
            if url.lower().startswith("/v1.0"):
                url = url[5:]
        if not url.startswith("/"):
            url = "/" + url
        headers = {"authorization": envelope.headers.get("authorization", "")}
        headers.update({str(k).lower(): str(v) for k, v in (member.get("headers") or {}).items()})
        raw_body = member.get("body")
        data = json.dumps(raw_body).encode("utf-8") if raw_body is not None else b""
        sub = Request.parse(str(member.get("method") or "GET"), "/v1.0" + url, headers, data)
        with self._lock:
            self.batch_members.append(RecordedRequest.of(sub))
        if _mailbox_of(sub.path) in getattr(self._refused, "mailboxes", set()):
            with self._lock:
                self.concurrency_refusals += 1
            resp = self.concurrency_refusal()  # over the mailbox's 4: this member alone is throttled
        else:
            resp = self._serve(sub, sub.segments[1:], member=True)
        out: dict[str, Any] = {"id": str(member.get("id")), "status": resp.status}
        out_headers = dict(resp.headers)
        if resp.body is not None and "Content-Type" not in out_headers:
            out_headers["Content-Type"] = "application/json" if isinstance(resp.body, (dict, list)) else "text/plain"
        out["headers"] = out_headers
        if resp.body is not None:
            out["body"] = resp.body
        return out
