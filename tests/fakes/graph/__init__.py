"""``FakeGraph``: a stateful, loopback Microsoft Graph for calendar sync tests and offline demos.

Why a fake and not recorded responses: the connector's correctness lives in how it reacts to
Graph's *behaviour* (changeKeys that move on every edit, delta rounds and expired tokens, duplicate
and lost notifications, throttling inside ``$batch``), so the fake keeps real state and follows the
documented behaviour: Microsoft Learn's Graph pages
(https://learn.microsoft.com/graph/change-notifications-delivery-webhooks,
https://learn.microsoft.com/graph/delta-query-events,
https://learn.microsoft.com/graph/api/resources/event,
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits,
https://learn.microsoft.com/graph/json-batching), each cited where it is used, and docs/verification.md for what no
page settles. It is a real HTTP server, so
msgraph-sdk's middleware, URL encoding of ids and retries all run for real.

Deliberate choices (documented so nobody mistakes them for Graph facts):

* Times are stored in UTC. A GET without ``Prefer: outlook.timezone`` returns an event in the zone
  it was created in (real Graph defaults to UTC): code that forgets the ``Prefer`` header gets
  non-UTC times and its tests fail, which is the point.
* Event ids always look like immutable ids; ``Prefer: IdType="ImmutableId"`` is recorded (in
  ``requests`` and per subscription) but does not change ids.
* Notification URLs may be plain ``http`` (loopback receivers); real Graph demands https.
* ``singleValueExtendedProperties`` appear in REST answers only when ``$expand``-ed, like Graph;
  the Python accessors (``get_event``/``events``) always include them when present.

Layout: ``common`` (constants, time helpers, records), ``base`` (state, users, rendering, faults,
HTTP entry), and one mixin per concern: ``events``, ``tagged`` (duplicate creates, lookups by
extended property), ``series``, ``delta``, ``batch``, ``subscriptions``.
"""

from __future__ import annotations

from .._http import Request, Response
from .base import GraphBase
from .batch import BatchMixin

# every module-level name of the former graph.py stays importable from here
from .common import *  # noqa: F403
from .common import (  # noqa: F401
    WINDOWS_TIME_ZONES,
    Delivery,
    GraphError,
    _DeltaRound,
    _DeltaToken,
    _Event,
    _Outgoing,
    _Subscription,
    _utc_now,
)
from .delta import DeltaMixin
from .events import EventsMixin
from .series import SeriesMixin
from .subscriptions import SubscriptionsMixin
from .tagged import TaggedEventsMixin

__all__ = ["WINDOWS_TIME_ZONES", "Delivery", "FakeGraph"]


class FakeGraph(TaggedEventsMixin, EventsMixin, SeriesMixin, DeltaMixin, BatchMixin, SubscriptionsMixin, GraphBase):
    """A loopback Graph v1.0 for users, events, calendarView delta, ``$batch`` and subscriptions.

    Start it per test (``with FakeGraph() as graph:``), point the client at ``graph.base_url``.
    Seed it (``seed=``) for reproducible ids, tokens, shuffles and random faults.
    """

    def _route(self, request: Request, segs: list[str], *, member: bool) -> Response:
        # OData functions may be called with parentheses (msgraph-sdk sends ".../delta()")
        low = [s.lower().removesuffix("()") for s in segs]
        method = request.method
        if low == ["$batch"]:
            if member:
                raise GraphError(400, "BadRequest", "Nested batch requests are not supported.")
            if method != "POST":
                raise GraphError(405, "MethodNotAllowed", "Only POST is allowed on $batch.")
            return self._batch(request)
        if low and low[0] == "subscriptions":
            return self._route_subscriptions(request, segs[1:])
        if low and low[0] == "users" and len(segs) >= 2:
            user_ref, rest, rest_low = segs[1], segs[2:], low[2:]
            if not rest:
                if method != "GET":
                    raise GraphError(405, "MethodNotAllowed", "Method not allowed.")
                return self._get_user(request, user_ref)
            if rest_low[:1] == ["calendar"] and rest_low[1:2] in (["events"], ["calendarview"]):
                rest, rest_low = rest[1:], rest_low[1:]  # /calendar/events aliases /events (primary calendar)
            if rest_low == ["sendmail"] and method == "POST":
                return self._send_mail(request, user_ref)
            if rest_low[:1] == ["calendars"]:
                return self._calendars(request, user_ref, rest)
            if rest_low == ["calendarview", "delta"] and method == "GET":
                return self._delta(request, user_ref)
            if rest_low == ["calendarview"] and method == "GET":
                return self._calendar_view(request, user_ref)
            if rest_low[:1] == ["events"]:
                if len(rest) == 1:
                    if method == "POST":
                        return self._post_event(request, user_ref)
                    if method == "GET":
                        return self._list_events(request, user_ref)
                elif len(rest) == 3 and rest_low[2] == "instances" and method == "GET":
                    return self._list_instances(request, user_ref, rest[1])
                elif len(rest) == 2:
                    if method == "GET":
                        return self._get_event(request, user_ref, rest[1])
                    if method == "PATCH":
                        return self._patch_event(request, user_ref, rest[1])
                    if method == "DELETE":
                        return self._delete_event(request, user_ref, rest[1])
                raise GraphError(405, "MethodNotAllowed", "Method not allowed.")
        segment = segs[-1] if segs else ""
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
