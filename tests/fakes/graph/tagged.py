"""Events an app writes and finds again: duplicate creates and lookups by extended property.

Facts (https://learn.microsoft.com/graph/api/resources/event, `transactionId`): a ``transactionId`` on create makes
the server drop a second POST with the same value; **how it answers the duplicate is unverified**.
``duplicate_create`` plays both plausible answers: ``"existing"`` (201 with the event the first
POST created, the default) or ``"conflict"`` (409 ``ErrorDuplicateTransactionId``). An app that is
safe either way finds its event again by its single-value extended property, with
``GET /users/{id}/events?$filter=singleValueExtendedProperties/any(ep: ep/id eq '…' and ep/value
eq '…')`` (Graph's documented filter on extended properties), which this module serves.
"""

from __future__ import annotations

import re

from .._http import Request, Response
from .common import GraphError
from .events import EventsMixin

_EXT_FILTER = re.compile(
    r"^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'((?:[^']|'')*)'\s+and\s+"
    r"\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$",
    re.IGNORECASE,
)


class TaggedEventsMixin(EventsMixin):
    duplicate_create: str = "existing"  # or "conflict"

    def _post_event(self, request: Request, user_ref: str, calendar: str = "primary") -> Response:
        body = request.json
        if self.duplicate_create == "conflict" and isinstance(body, dict) and body.get("transactionId"):
            with self._lock:
                mailbox = self._mailbox(user_ref)
                existing_id = self._transactions.get((mailbox, str(body["transactionId"])))
                if existing_id and existing_id in self._events[mailbox]:
                    raise GraphError(409, "ErrorDuplicateTransactionId", "An item with this transactionId exists.")
        return super()._post_event(request, user_ref, calendar)

    def _list_events(self, request: Request, user_ref: str) -> Response:
        text = request.query.get("$filter")
        if not text:
            return super()._list_events(request, user_ref)
        match = _EXT_FILTER.match(text)
        if match is None:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The filter is not supported by this fake.")
        prop_id, value = match.group(2).replace("''", "'"), match.group(3).replace("''", "'")
        tz, expand = self._tz_pref(request), self._expand(request)
        with self._lock:
            mailbox = self._mailbox(user_ref)
            found = [
                self._selected(request, self._render(ev, tz, expand))
                for ev in self._events[mailbox].values()
                if any(k.lower() == prop_id.lower() and v == value for k, v in ev.ext_props.items())
            ]
        return Response(
            200, {"@odata.context": f"{self.base_url}/$metadata#users('{user_ref}')/events", "value": found}
        )
