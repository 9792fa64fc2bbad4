"""Microsoft Graph through msgraph-sdk, imported lazily (it takes over a second to import).

Reads come back as Graph JSON bytes (the SDK's request builders, auth and retry middleware, but no
model round-trip), because the core reads one format for every path: GET, delta and $batch.
Every request asks for immutable ids and UTC; at most 4 requests per mailbox run at once (Graph's
per-mailbox concurrency limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import httpx

from shared.adapters.graph_subscriptions import SubscriptionCalls
from shared.adapters.request_meter import count_graph
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from shared.core.events import REQUIRED_FIELDS
from shared.core.graph_cloud import graph_cloud
from shared.core.transactions import ErrorCode, SyncError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential

PREFER = ('IdType="ImmutableId"', 'outlook.timezone="UTC"', 'outlook.body-content-type="text"')
EVENT_FIELDS = [*REQUIRED_FIELDS, "iCalUId", "seriesMasterId"]  # what a complete event carries, and more
MAX_CONCURRENT_PER_MAILBOX = 4
DELTA_PAGE_SIZE = 100  # Prefer: odata.maxpagesize of delta pages
DELTA_EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired"})  # compared lower-cased (docs spell both)
INSTANCES_PAGE_SIZE = 100  # $top of /instances and calendarView pages
BATCH_LIMIT = 20  # members per $batch request
GONE_ON_DELETE = frozenset({"errorcannotdeleteobject"})  # a 403 that means "already deleted" (compared lower-cased)
# Every event read also returns our tag (if any), so both directions know our events at no cost.
EXPAND_TAG = f"singleValueExtendedProperties($filter=id eq '{TAG_PROPERTY_ID}')"


def graph_credential(
    tenant_id: str, client_id: str, client_secret: str | None, *, authority: str | None = None
) -> Callable[[], AsyncTokenCredential]:
    """A factory of async credentials: a client secret when configured, else the (user-assigned)
    managed identity. `authority`: the Microsoft Entra host of the app's cloud (`GraphCloud.authority`);
    a secret signs in there, while a managed identity's token comes from its own cloud's endpoint.
    From ``azure.identity.aio``, because kiota awaits the credential on the
    event loop (a sync credential blocks the loop at each token refresh,
    https://github.com/microsoft/kiota-authentication-azure-python); a factory,
    because an async credential belongs to the loop that created it (one per GraphGateway client)."""

    def build() -> AsyncTokenCredential:
        from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential

        if client_secret:
            return ClientSecretCredential(tenant_id, client_id, client_secret, authority=authority)
        return ManagedIdentityCredential(client_id=client_id)

    return build


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify_status(status: int, headers: Any = None, what: str = "request") -> SyncError:
    """A stable error for a failed Graph answer."""
    if status == 429:
        return SyncError(ErrorCode.GRAPH_THROTTLED, f"Graph throttled the {what}", _retry_after(headers))
    if status in (401, 403):
        return SyncError(ErrorCode.GRAPH_FORBIDDEN, f"Graph refused the {what} ({status}): check permissions")
    if status == 404:
        return SyncError(ErrorCode.GRAPH_NOT_FOUND, f"Graph found no such item for the {what}")
    if status >= 500 or status in (408, 409, 412):
        return SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"Graph failed the {what} ({status})", _retry_after(headers))
    return SyncError(ErrorCode.GRAPH_REJECTED, f"Graph rejected the {what} ({status})")


class GraphGateway(SubscriptionCalls):
    """The Graph calls the sync needs. Clients are bound to the event loop that created them."""

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential | AsyncTokenCredential | Callable[[], AsyncTokenCredential],
        *,
        max_retries: int = 3,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._credential = credential
        self._max_retries = max_retries
        self._timeout = timeout_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._limits: dict[str, MailboxLimit] = defaultdict(lambda: MailboxLimit(MAX_CONCURRENT_PER_MAILBOX))

    def _graph(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = self._build()
            self._loop = loop
            self._limits.clear()
        return self._client

    def _build(self) -> Any:
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph import GraphRequestAdapter, GraphServiceClient
        from msgraph_core import GraphClientFactory

        host = httpx.URL(self._base_url).host
        credential = self._credential
        if not hasattr(credential, "get_token"):  # a factory: one async credential per event loop
            credential = credential()  # type: ignore[operator]
        scopes = graph_cloud(self._base_url).scopes  # a national cloud's Graph refuses the public scope
        auth = AzureIdentityAuthenticationProvider(credential, scopes=scopes, allowed_hosts=[host])
        options = {RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=self._max_retries)}
        http_client = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(timeout=self._timeout), options=options
        )
        adapter = GraphRequestAdapter(auth, http_client)
        adapter.base_url = self._base_url  # no trailing slash, or paths become //users
        return GraphServiceClient(request_adapter=adapter)

    async def _send(
        self,
        mailbox: str | dict[str, int],
        request_info: Any,
        what: str,
        weight: int = 1,
        gone_codes: frozenset[str] = frozenset(),
    ) -> dict[str, Any] | None:
        """Send one request; None for 404; SyncError for everything that failed.

        weight: how many of the mailbox's 4 concurrent requests it uses (a $batch of n members
        counts as min(n, 4): Outlook runs up to 4 members of one batch in parallel,
        https://learn.microsoft.com/graph/json-batching, https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
        A $batch addressing several mailboxes passes {mailbox: members} instead: each mailbox is
        held for its own members (`_hold`)."""
        from kiota_abstractions.api_error import APIError
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        client = self._graph()
        for value in PREFER:
            request_info.headers.add("Prefer", value)
        try:
            async with self._hold(mailbox if isinstance(mailbox, dict) else {mailbox: weight}):
                count_graph()
                raw = await client.request_adapter.send_primitive_async(request_info, "bytes", {"XXX": ODataError})
        except APIError as error:
            status = error.response_status_code or 0
            if status == 404 or (status == 403 and (_graph_error_code(error) or "").lower() in gone_codes):
                return None
            if status == 410 or (_graph_error_code(error) or "").lower() in DELTA_EXPIRED_CODES:
                from shared.core.outlook_to_dime.delta import DeltaExpired

                raise DeltaExpired(f"Graph no longer knows the delta token of the {what} ({status})") from None
            raise classify_status(status, error.response_headers, what) from None
        except httpx.TimeoutException:
            raise SyncError(ErrorCode.GRAPH_UNAVAILABLE, f"Graph timed out on the {what}") from None
        except httpx.TransportError as error:
            raise SyncError(
                ErrorCode.GRAPH_UNAVAILABLE, f"Graph unreachable for the {what}: {type(error).__name__}"
            ) from None
        return json.loads(raw) if raw else {}

    @contextlib.asynccontextmanager
    async def _hold(self, weights: dict[str, int]) -> AsyncIterator[None]:
        """Hold each mailbox's limit for min(4, its weight), in sorted order: two requests
        holding overlapping mailboxes always take them in the same order, so never deadlock."""
        merged: dict[str, int] = defaultdict(int)
        for mailbox, weight in weights.items():
            merged[mailbox.lower()] += weight
        async with contextlib.AsyncExitStack() as stack:
            for mailbox in sorted(merged):
                await stack.enter_async_context(self._limits[mailbox].hold(merged[mailbox]))
            yield

    async def get_user(self, user: str) -> dict[str, Any] | None:
        """id, mail, userPrincipalName and displayName of a user (by object id or UPN); None if unknown."""
        from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

        builder = self._graph().users.by_user_id(user)
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "mail", "userPrincipalName", "displayName"]
        )
        info = builder.to_get_request_information(_config(query))
        return await self._send(user, info, "user lookup")

    async def get_event(self, mailbox: str, event_id: str) -> dict[str, Any] | None:
        """The event's current state as Graph JSON; None when it no longer exists."""
        from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder

        builder = self._graph().users.by_user_id(mailbox).events.by_event_id(event_id)
        query = EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(
            select=EVENT_FIELDS, expand=[EXPAND_TAG]
        )
        info = builder.to_get_request_information(_config(query))
        return await self._send(mailbox, info, "event read")

    async def create_event(self, mailbox: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST an event into the mailbox's default calendar (the body carries transactionId)."""
        info = _json_request("POST", f"/users/{quote(mailbox, safe='')}/events", body)
        created = await self._send(mailbox, info, "event create")
        if not created or not isinstance(created.get("id"), str):
            raise SyncError(ErrorCode.GRAPH_NOT_FOUND, f"Graph knows no mailbox {mailbox} to write into")
        return created

    async def find_tagged_event(self, mailbox: str, value: str) -> dict[str, Any] | None:
        """The event carrying our tag with this value (GET /events?$filter on the extended property)."""
        found = await self.find_tagged_events(mailbox, value)
        return found[0] if found else None

    async def find_tagged_events(self, mailbox: str, value: str) -> list[dict[str, Any]]:
        """Every event carrying our tag with this value: GET /events?$filter on the extended
        property ("Get singleValueLegacyExtendedProperty", Microsoft Learn: $filter with eq on id
        and on value). More than one means a create whose row never named it (issue 22)."""
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        literal = value.replace("'", "''")  # OData string literal
        text = f"singleValueExtendedProperties/any(ep: ep/id eq '{TAG_PROPERTY_ID}' and ep/value eq '{literal}')"
        query = _literal_query((("$filter", text), ("$select", ",".join(EVENT_FIELDS)), ("$expand", EXPAND_TAG)))
        info = RequestInformation(Method.GET, "{+baseurl}" + f"/users/{quote(mailbox, safe='')}/events?{query}", {})
        found = await self._send(mailbox, info, "tagged event lookup") or {}
        items = found.get("value") if isinstance(found.get("value"), list) else []
        return [item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]

    async def tagged_in_window(self, mailbox: str, start: str, end: str) -> list[dict[str, Any]] | None:
        """Every event of the primary calendar over a range (ISO start, end) with our tag's value,
        every page: one calendarView listing `$select=id,start,end` with
        `$expand=singleValueExtendedProperties($filter=id eq '…')` (the documented way to read an
        extended property, "Get singleValueLegacyExtendedProperty",
        https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get); events without the tag come back
        without the property and are dropped.
        Items: {"id", "tag", "start"} (start as Graph's dateTimeTimeZone). None: no such mailbox."""
        from shared.core.dime_to_outlook.tag import tag_of

        path = f"/users/{quote(mailbox, safe='')}/calendar/calendarView"
        query = _literal_query(
            (
                ("startDateTime", start),
                ("endDateTime", end),
                ("$select", "id,start,end"),
                ("$expand", EXPAND_TAG),
                ("$top", str(INSTANCES_PAGE_SIZE)),
            )
        )
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        info = RequestInformation(Method.GET, "{+baseurl}" + f"{path}?{query}", {})
        builder = self._graph().users.by_user_id(mailbox).calendar.calendar_view
        first = await self._send(mailbox, info, "tagged calendar view")
        if first is None:
            return None
        items = [item for item in first.get("value") or [] if isinstance(item, dict)]
        next_link = first.get("@odata.nextLink")
        if next_link:
            items += await self._collect(
                mailbox, builder, builder.with_url(next_link).to_get_request_information(), "tagged calendar view"
            )
        tagged = []
        for item in items:
            tag = tag_of(item)
            if tag is not None and isinstance(item.get("id"), str):
                tagged.append({"id": item["id"], "tag": tag, "start": item.get("start")})
        return tagged

    async def update_event(self, mailbox: str, event_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PATCH an event; None when it no longer exists."""
        path = f"/users/{quote(mailbox, safe='')}/events/{quote(event_id, safe='')}"
        return await self._send(mailbox, _json_request("PATCH", path, body), "event update")

    async def delete_event(self, mailbox: str, event_id: str) -> bool:
        """DELETE an event; False when it was already gone: 404, or 403 `ErrorCannotDeleteObject`,
        which a repeated DELETE of an item already in Deleted Items may answer (immutable ids keep
        the id across the move; https://github.com/microsoftgraph/msgraph-sdk-dotnet/issues/3047,
        https://learn.microsoft.com/graph/outlook-immutable-id). Any other 403 stays a permission error."""
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        path = f"/users/{quote(mailbox, safe='')}/events/{quote(event_id, safe='')}"
        info = RequestInformation(Method.DELETE, "{+baseurl}" + path, {})
        return await self._send(mailbox, info, "event delete", gone_codes=GONE_ON_DELETE) is not None

    async def calendar_delta(
        self, mailbox: str, link: str | None, window: tuple[str, str] | None = None, page_size: int | None = None
    ) -> dict[str, Any]:
        """One page of calendarView/delta as Graph JSON: a fresh round over `window` (ISO start, end)
        when `link` is None, else the nextLink or deltaLink followed verbatim. DeltaExpired when
        Graph no longer knows the token (410, syncStateNotFound, resyncRequired)."""
        from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder

        builder = self._graph().users.by_user_id(mailbox).calendar_view.delta
        if link:
            info = builder.with_url(link).to_get_request_information()
        else:
            assert window is not None
            query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time=window[0], end_date_time=window[1]
            )
            info = builder.to_get_request_information(_config(query))
        info.headers.add("Prefer", f"odata.maxpagesize={page_size or DELTA_PAGE_SIZE}")
        page = await self._send(mailbox, info, "calendar delta")
        if page is None:
            raise SyncError(ErrorCode.GRAPH_NOT_FOUND, f"mailbox {mailbox} has no calendar to track")
        return page

    async def list_instances(self, mailbox: str, master_id: str, window: tuple[str, str]) -> list[dict[str, Any]]:
        """Every instance (occurrences and exceptions, full data) of a series in `window` (ISO
        start, end), following nextLinks: what an edit of a series or of one instance changed
        (Graph notifies only the master, docs/verification.md; https://learn.microsoft.com/graph/api/event-list-instances)."""
        from msgraph.generated.users.item.events.item.instances.instances_request_builder import (
            InstancesRequestBuilder,
        )

        builder = self._graph().users.by_user_id(mailbox).events.by_event_id(master_id).instances
        query = InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(
            start_date_time=window[0], end_date_time=window[1], select=EVENT_FIELDS, top=INSTANCES_PAGE_SIZE
        )
        return await self._collect(mailbox, builder, builder.to_get_request_information(_config(query)), "instances")

    async def in_primary_calendar(self, mailbox: str, event_id: str, start: str, end: str) -> bool:
        """Whether the primary calendar lists the event over its own time range (ISO start, end).

        The proof that an event is in the calendar: a GET answering 200 is not (an immutable id
        survives the move to Deleted Items, https://learn.microsoft.com/graph/outlook-immutable-id), and notifications
        cover every calendar of
        the mailbox while the sync covers the primary one."""
        return event_id in await self.calendar_ids(mailbox, start, end)

    async def calendar_ids(self, mailbox: str, start: str, end: str) -> set[str]:
        """The ids the primary calendar's calendarView lists over a range (ISO start, end), every
        page (`$select=id`): singles, occurrences and exceptions (https://learn.microsoft.com/graph/api/user-list-calendarview)."""
        from msgraph.generated.users.item.calendar.calendar_view.calendar_view_request_builder import (
            CalendarViewRequestBuilder,
        )

        builder = self._graph().users.by_user_id(mailbox).calendar.calendar_view
        query = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
            start_date_time=start, end_date_time=end, select=["id"], top=INSTANCES_PAGE_SIZE
        )
        info = builder.to_get_request_information(_config(query))
        listed = await self._collect(mailbox, builder, info, "calendar view")
        return {str(item.get("id")) for item in listed}

    async def send_mail(self, sender: str, body: dict[str, Any]) -> None:
        """`POST /users/{sender}/sendMail` (application permission Mail.Send): the onboarding mail.
        Graph answers 202 without a body; a 404 (no such sender mailbox) is a SyncError here."""
        info = _json_request("POST", f"/users/{quote(sender, safe='')}/sendMail", body)
        if await self._send(sender, info, "onboarding mail") is None:
            raise SyncError(ErrorCode.GRAPH_NOT_FOUND, f"the onboarding mail's sender {sender} has no mailbox")

    async def calendar_view(self, mailbox: str, start: str, end: str) -> list[dict[str, Any]]:
        """Every event of the primary calendar over a range (ISO start, end), full data (singles,
        occurrences, exceptions; never a master, https://learn.microsoft.com/graph/api/user-list-calendarview): what a
        person's consent preview reads."""
        from msgraph.generated.users.item.calendar.calendar_view.calendar_view_request_builder import (
            CalendarViewRequestBuilder,
        )

        builder = self._graph().users.by_user_id(mailbox).calendar.calendar_view
        query = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
            start_date_time=start, end_date_time=end, select=EVENT_FIELDS, expand=[EXPAND_TAG], top=INSTANCES_PAGE_SIZE
        )
        return await self._collect(
            mailbox, builder, builder.to_get_request_information(_config(query)), "calendar view"
        )

    async def _collect(self, mailbox: str, builder: Any, info: Any, what: str) -> list[dict[str, Any]]:
        """Every item of a paged collection; a 404 (no such series or mailbox) is an empty list."""
        items: list[dict[str, Any]] = []
        while True:
            page = await self._send(mailbox, info, what)
            if page is None:
                return items
            items.extend(item for item in page.get("value") or [] if isinstance(item, dict))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return items
            info = builder.with_url(next_link).to_get_request_information()

    async def get_events_batch(self, mailbox: str, event_ids: list[str]) -> dict[str, BatchAnswer]:
        """Read up to 20 events of one mailbox in one $batch request (`read_events_batch`)."""
        answers = await self.read_events_batch([(mailbox, event_id) for event_id in event_ids])
        return {event_id: answers[(mailbox, event_id)] for event_id in event_ids}

    async def read_events_batch(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], BatchAnswer]:
        """Read up to 20 events, (mailbox, event id) each, of any mailboxes in one $batch request
        (JSON batching takes members addressing different users; each is throttled on its own).

        The envelope succeeds even when members fail, so each event gets its own answer: status,
        Graph JSON (200 only) and Retry-After (429/503). Members are not retried here.
        """
        members = [batch_member(EVENT_READ, mailbox, event_id) for mailbox, event_id in keys]
        return dict(zip(keys, await self._batch(members, "event batch read"), strict=True))

    async def reads_batch(self, keys: list[tuple[str, str, Any]]) -> dict[tuple[str, str, Any], BatchAnswer]:
        """Up to 20 reads of any kinds and mailboxes in one $batch: (mailbox, kind, what) each,
        `batch_member`'s kinds (an event in full; a calendarView's first page of ids). Events read
        and proven at the same moment ride one request, which holds each mailbox once."""
        members = [batch_member(kind, mailbox, what) for mailbox, kind, what in keys]
        return dict(zip(keys, await self._batch(members, "batch read"), strict=True))

    async def calendar_views_batch(
        self, mailbox: str, ranges: list[tuple[str, str]]
    ) -> dict[tuple[str, str], BatchAnswer]:
        """`calendar_views_of` for ranges of one mailbox."""
        answers = await self.calendar_views_of([(mailbox, where) for where in ranges])
        return {where: answers[(mailbox, where)] for where in ranges}

    async def calendar_views_of(
        self, keys: list[tuple[str, tuple[str, str]]]
    ) -> dict[tuple[str, tuple[str, str]], BatchAnswer]:
        """The first page (ids only) of the primary calendar's calendarView over each of up to 20
        (mailbox, (ISO start, end)) in one $batch, of any mailboxes: `in_primary_calendar` for many
        events at once. A listing proves membership of every id it lists; a page carrying
        `@odata.nextLink` is continued with `calendar_view_ids`. Members are not retried here."""
        members = [batch_member(VIEW_IDS, mailbox, where) for mailbox, where in keys]
        return dict(zip(keys, await self._batch(members, "calendar view batch"), strict=True))

    async def calendar_view_ids(self, mailbox: str, next_link: str) -> set[str]:
        """The ids of the remaining pages of a calendarView listing, from its nextLink."""
        builder = self._graph().users.by_user_id(mailbox).calendar.calendar_view
        info = builder.with_url(next_link).to_get_request_information()
        listed = await self._collect(mailbox, builder, info, "calendar view")
        return {str(item.get("id")) for item in listed}

    async def _batch(self, members: list[tuple[str, str]], what: str) -> list[BatchAnswer]:
        """Up to 20 GETs, (mailbox, URL) each, in one $batch request, an answer per member, in
        order: a member Graph did not answer counts as unavailable (503). Each mailbox's limit is
        held for min(4, its members) while the request runs (Outlook runs up to 4 members of one
        mailbox at once, https://learn.microsoft.com/graph/json-batching)."""
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        if not 0 < len(members) <= BATCH_LIMIT:
            raise ValueError(f"a $batch holds 1 to {BATCH_LIMIT} requests, not {len(members)}")
        prefer = ", ".join(PREFER)
        requests = [
            {"id": str(number), "method": "GET", "url": url, "headers": {"Prefer": prefer}}
            for number, (_, url) in enumerate(members, 1)
        ]
        weights: dict[str, int] = defaultdict(int)
        for mailbox, _ in members:
            weights[mailbox] += 1
        info = RequestInformation(Method.POST, "{+baseurl}/$batch", {})
        info.headers.try_add("Content-Type", "application/json")
        info.headers.try_add("Accept", "application/json")
        info.content = json.dumps({"requests": requests}, separators=(",", ":")).encode("utf-8")
        document = await self._send(dict(weights), info, what) or {}
        answers: list[BatchAnswer] = [BatchAnswer(503, None, None)] * len(members)
        for response in document.get("responses") or []:
            try:
                number = int(response.get("id")) - 1
            except (TypeError, ValueError):
                continue
            if not 0 <= number < len(members):
                continue
            status = int(response.get("status") or 0)
            body = response.get("body")
            body = body if status == 200 and isinstance(body, dict) else None
            answers[number] = BatchAnswer(status, body, _retry_after(response.get("headers")))
        return answers


EVENT_READ = "event"  # a $batch member reading an event in full
VIEW_IDS = "view"  # a $batch member listing the primary calendar's ids over (ISO start, end)


def batch_member(kind: str, mailbox: str, what: Any) -> tuple[str, str]:
    """One GET member of a `$batch`, (mailbox, URL): EVENT_READ of an event id (every field we
    hash, and our tag), or VIEW_IDS of a range (the first page of the primary calendar's
    calendarView, ids only: https://learn.microsoft.com/graph/api/user-list-calendarview)."""
    user = quote(mailbox, safe="")
    if kind == EVENT_READ:
        select, expand = ",".join(EVENT_FIELDS), quote(EXPAND_TAG, safe="(),=$'")
        return mailbox, f"/users/{user}/events/{quote(str(what), safe='')}?$select={select}&$expand={expand}"
    if kind == VIEW_IDS:
        start, end = what
        return mailbox, (
            f"/users/{user}/calendar/calendarView?startDateTime={quote(start, safe='')}"
            f"&endDateTime={quote(end, safe='')}&$select=id&$top={INSTANCES_PAGE_SIZE}"
        )
    raise ValueError(f"no $batch member of kind {kind!r}")


class MailboxLimit:
    """Graph's 4 concurrent requests per mailbox, where one request may count several times."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most ever in use at once (tests and benchmarks read it)
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, weight: int = 1) -> AsyncIterator[None]:
        weight = max(1, min(weight, self.capacity))
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_use + weight <= self.capacity)
            self.in_use += weight
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= weight
                self._changed.notify_all()


class BatchAnswer(NamedTuple):
    status: int
    body: dict[str, Any] | None
    retry_after: float | None


def _graph_error_code(error: Any) -> str | None:
    """The Graph error code ("syncStateNotFound", ...) of an ODataError, when it has one."""
    code = getattr(getattr(error, "error", None), "code", None)
    return code if isinstance(code, str) else None


def _literal_query(pairs: tuple[tuple[str, str], ...]) -> str:
    """A query string to append to a `RequestInformation` URL template, every value percent-encoded
    but for ``()$:``. Never a raw comma: kiota expands the whole URL as an RFC 6570 template
    (std-uritemplate), which drops the commas of its literal text, so ``$select=id,start,end``
    went out as ``$select=idstartend``; ``%2C`` reaches Graph as the comma it decodes (and a tag
    value holding a comma keeps it)."""
    return "&".join(f"{name}={quote(value, safe='()$:')}" for name, value in pairs)


def _json_request(method: str, path: str, body: dict[str, Any]) -> Any:
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation

    info = RequestInformation(Method[method], "{+baseurl}" + path, {})
    info.headers.try_add("Content-Type", "application/json")
    info.headers.try_add("Accept", "application/json")
    info.content = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return info


def _config(query: Any) -> Any:
    from kiota_abstractions.base_request_configuration import RequestConfiguration

    return RequestConfiguration(query_parameters=query)
