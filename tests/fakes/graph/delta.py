"""``calendarView/delta`` of ``FakeGraph``."""

from __future__ import annotations

import copy
import html
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .._http import Request, Response
from .base import GraphBase
from .common import (
    DEFAULT_PAGE_SIZE,
    GraphError,
    _DeltaRound,
    _DeltaToken,
    _Event,
    format_utc,
    graph_error,
    parse_prefer,
)


class DeltaMixin(GraphBase):
    """``calendarView/delta``: rounds, pages, skip and delta tokens, expiry."""

    # ---------------------------------------------------------------- delta
    def _delta_link(self, user_ref: str, kind: str, token: str) -> str:
        return f"{self.base_url}/users/{quote(user_ref, safe='@')}/calendarView/delta?{kind}={token}"

    def expire_delta_tokens(self, mailbox_id: str | None = None, *, resync_required: bool = False) -> int:
        """Expire every outstanding delta and skip token (of one mailbox, or all). Their next use
        answers 410 Gone + ``Location`` + ``syncStateNotFound``, or with ``resync_required`` 400
        ``resyncRequired`` (both occur). Returns how many tokens were expired."""
        mode = "resync" if resync_required else "gone"
        with self._lock:
            mailbox = self._mailbox_or_key_error(mailbox_id) if mailbox_id else None
            tokens = list(self._delta_tokens.values()) + [r.token for r, _, _ in self._skip_tokens.values()]
            hit = 0
            for tok in tokens:
                if mailbox is None or tok.mailbox == mailbox:
                    tok.expired, hit = mode, hit + 1
            return hit

    def _expired_response(self, tok: _DeltaToken | None, user_ref: str, mode: str) -> Response:
        if mode == "resync":
            return graph_error(
                400,
                "resyncRequired",
                "Resync required. Replace any local cached copy with the latest version from the server.",
            )
        headers = {}
        if tok is not None:
            ws, we = tok.window
            headers["Location"] = (
                f"{self.base_url}/users/{quote(user_ref, safe='@')}/calendarView/delta"
                f"?startDateTime={quote(format_utc(ws))}&endDateTime={quote(format_utc(we))}"
            )
        return graph_error(410, "syncStateNotFound", "The sync state generation is not found.", headers)

    def _delta(self, request: Request, user_ref: str) -> Response:
        bad = sorted(k for k in request.query if k.lower() in ("$select", "$filter", "$expand", "$orderby", "$search"))
        if bad:
            raise GraphError(
                400,
                "ErrorInvalidUrlQuery",
                "The following parameters are not supported with change tracking over the 'CalendarView' "
                f"resource: '{', '.join(bad)}'.",
            )
        prefer = parse_prefer(request.headers)
        tz = self._tz_pref(request)
        try:
            page_size = max(1, int(prefer.get("odata.maxpagesize", DEFAULT_PAGE_SIZE)))
        except ValueError:
            page_size = DEFAULT_PAGE_SIZE
        skip = request.query.get("$skiptoken")
        delta = request.query.get("$deltatoken")
        with self._lock:
            mailbox = self._mailbox(user_ref)
            if skip is not None:
                entry = self._skip_tokens.get(skip)
                if entry is None or entry[0].token.mailbox != mailbox:
                    return self._expired_response(None, user_ref, "gone")
                rnd, offset, _ = entry
                if rnd.token.expired:
                    return self._expired_response(rnd.token, user_ref, rnd.token.expired)
                return self._delta_page(rnd, offset, page_size, tz)
            if delta is not None:
                tok = self._delta_tokens.get(delta)
                if tok is None or tok.mailbox != mailbox:
                    return self._expired_response(None, user_ref, "gone")
                if tok.expired:
                    return self._expired_response(tok, user_ref, tok.expired)
                rnd = self._delta_round(mailbox, user_ref, tok.window, since=tok.seq)
            else:
                rnd = self._delta_round(mailbox, user_ref, self._window(request), since=None)
            return self._delta_page(rnd, 0, page_size, tz)

    def _delta_round(
        self, mailbox: str, user_ref: str, window: tuple[datetime, datetime], since: int | None
    ) -> _DeltaRound:
        """Snapshot what a round reports. First round: events overlapping the window. Later
        rounds: events changed since the token (outside the window → ``@removed``) and deletions.
        Primary calendar only; a series contributes its master and its instances."""
        ws, we = window
        items: list[tuple[str, str]] = []
        for ev in sorted(self._delta_candidates(mailbox), key=lambda e: e.seq):
            if since is None:
                if self._in_window(ev, ws, we):
                    items.append((ev.id, "event"))
            elif ev.seq > since:
                items.append((ev.id, "event" if self._in_window(ev, ws, we) else "removed"))
        if since is not None:
            for eid, seq in sorted(self._tombstones[mailbox].items(), key=lambda kv: kv[1]):
                if seq > since:
                    items.append((eid, "removed"))
        return _DeltaRound(_DeltaToken(mailbox, user_ref, window, self._seq), items)

    def _delta_candidates(self, mailbox: str) -> list[_Event]:
        out: list[_Event] = []
        for ev in self._events[mailbox].values():
            if ev.calendar != "primary":
                continue  # calendarView/delta covers the primary calendar only
            out.append(ev)
            if ev.data.get("type") == "seriesMaster":
                out.extend(self._instances_of(ev))
        return out

    def _in_window(self, ev: _Event, start: datetime, end: datetime) -> bool:
        if ev.data.get("type") == "seriesMaster":
            span = self._series_span(ev)
            return span is not None and span[0] < end and span[1] > start
        return ev.overlaps(start, end)

    def _render_delta(self, ev: _Event, tz: str | None) -> dict[str, Any]:
        """A delta item: partial for series (https://learn.microsoft.com/graph/delta-query-events), the body only
        when ``delta_body`` says so (and then in that content type), sparse with ``delta_sparse``."""
        full = self._render(ev, tz)
        if ev.data.get("type") in ("seriesMaster", "occurrence", "exception"):
            keep = ("@odata.etag", "id", "type", "seriesMasterId", "start", "end")
            return {k: full[k] for k in keep if k in full}
        full.pop("body", None)
        if self.delta_body == "text":
            full["body"] = copy.deepcopy(ev.data["body"])
        elif self.delta_body == "html":
            content = html.escape(str(ev.data["body"].get("content") or ""))
            full["body"] = {"contentType": "html", "content": f"<html><body><p>{content}</p></body></html>"}
        if self.delta_sparse:
            keep = ("@odata.etag", "id", "changeKey", "type", "subject", "start", "end", "body")
            return {k: full[k] for k in keep if k in full}
        return full

    def _delta_page(self, rnd: _DeltaRound, offset: int, page_size: int, tz: str | None) -> Response:
        ws, we = rnd.token.window
        value: list[dict[str, Any]] = []
        for eid, kind in rnd.items[offset : offset + page_size]:
            ev = self._lookup(rnd.token.mailbox, eid)
            if kind == "event" and ev is not None and self._in_window(ev, ws, we):
                value.append(self._render_delta(ev, tz))
            else:
                value.append({"@odata.type": "#microsoft.graph.event", "id": eid, "@removed": {"reason": "deleted"}})
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/$metadata#Collection(event)", "value": value}
        next_offset = offset + page_size
        if next_offset < len(rnd.items):
            token = self._new_token()
            self._skip_tokens[token] = (rnd, next_offset, page_size)
            body["@odata.nextLink"] = self._delta_link(rnd.token.user_ref, "$skiptoken", token)
        else:
            token = self._new_token()
            self._delta_tokens[token] = rnd.token
            body["@odata.deltaLink"] = self._delta_link(rnd.token.user_ref, "$deltatoken", token)
        return Response(200, body)
