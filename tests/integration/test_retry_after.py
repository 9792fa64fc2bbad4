"""The app's own clients honour Retry-After, end to end: a throttled call waits what the service
asked and then succeeds, without surfacing an error. Against the faithful fakes (FakeGraph answers
429 with `Retry-After`, as Microsoft Learn's throttling page documents:
https://learn.microsoft.com/graph/throttling ; FakeDime as the vendor's SDK expects it).

No real waiting: the clients' sleeps are recorded instead (Graph: kiota's RetryHandler awaits
`asyncio.sleep`; Dime.Scheduler: the SDK's RetryTransport takes a `sleep=` callable), so what is
asserted is the delay they chose, not how long a test took.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.adapters.dime import DimeGateway
from shared.adapters.graph import GraphGateway
from shared.core.outlook_to_dime.appointments import PARAMETER_NAMES
from shared.core.transactions import ErrorCode, SyncError
from tests.conftest import DIME_API_KEY
from tests.fakes.credential import StaticTokenCredential


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """Every asyncio.sleep of the Graph client's retry handler, not waited."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float, *args: Any, **kwargs: Any) -> Any:
        delays.append(delay)
        return await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", record)
    return delays


def test_graph_waits_the_retry_after_of_a_429_then_reads_the_event(graph, slept):
    user = graph.add_user()["id"]
    event = graph.create_event(user)["id"]
    graph.fail_next(count=1, status=429, retry_after=7, path_contains="/events/")
    gateway = GraphGateway(graph.base_url, StaticTokenCredential(), max_retries=3)

    read = asyncio.run(gateway.get_event(user, event))

    assert read is not None and read["id"] == event
    assert 7 in slept  # the delay the service asked for, not a backoff of the client's own


def test_graph_gives_up_at_once_on_a_retry_after_beyond_its_limit(graph, slept):
    """A Retry-After of 180 s or more is not waited inside a request (the retry handler's limit):
    the read fails as throttled, carrying the wait, for the queue/retry machinery to honour."""
    user = graph.add_user()["id"]
    event = graph.create_event(user)["id"]
    graph.fail_next(count=1, status=429, retry_after=600, path_contains="/events/")
    gateway = GraphGateway(graph.base_url, StaticTokenCredential(), max_retries=3)

    with pytest.raises(SyncError) as failure:
        asyncio.run(gateway.get_event(user, event))

    assert failure.value.code is ErrorCode.GRAPH_THROTTLED
    assert failure.value.retry_after == 600
    assert 600 not in slept


def upsert(guid: str) -> dict[str, object]:
    values = dict.fromkeys(PARAMETER_NAMES, "")
    values.update(
        AppointmentId="0",
        AppointmentGuid=guid,
        ExchangeId="AAkALg-x",
        Start="2026-11-23 09:00:00Z",
        End="2026-11-23 10:00:00Z",
        Subject="Visit",
        Importance="0",
        ResourceEmail="jane@contoso.com",
        ShowAs="3",
        Sensitivity="1",
        CreatedByExchange="True",
    )
    return {
        "StoredProcedureName": "mboc_upsertExchangeAppointment",
        "ParameterNames": list(values),
        "ParameterValues": list(values.values()),
    }


def test_dime_waits_the_retry_after_of_a_429_then_imports(dime, monkeypatch):
    from dimescheduler.retry import RetryTransport

    delays: list[float] = []
    # The SDK's documented injection point (RetryTransport(sleep=...)), set as its default here
    # because DimeGateway builds the transport inside the SDK's client.
    monkeypatch.setitem(RetryTransport.__init__.__kwdefaults__, "sleep", delays.append)
    dime.fail_next(status=429, retry_after=4)
    gateway = DimeGateway(dime.base_url, DIME_API_KEY, max_retries=3, max_delay_seconds=30)
    guid = "11111111-1111-1111-1111-111111111111"

    content = gateway.run_import([upsert(guid)])

    assert delays == [4]
    assert guid in dime.appointments and content.get("Success") is not False
