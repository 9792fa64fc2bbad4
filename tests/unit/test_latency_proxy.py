"""The delaying proxy's request classes (scripts/latency_proxy.py): each request waits the delay of
its class, so a wrong class is a wrong benchmark."""

from __future__ import annotations

import pytest

from scripts.latency_proxy import (
    DIME_IMPORT,
    DIME_OTHER,
    GRAPH_BATCH,
    GRAPH_GET,
    GRAPH_WRITE,
    QUEUE_OP,
    TABLE_BATCH,
    TABLE_POINT,
    _endpoints,
    _origin_and_path,
    classify,
)

EVENT = "/v1.0/users/0b1c2d3e-0000-4000-8000-000000000001/events/AAMkAGI2TG93AAA%3D"


@pytest.mark.parametrize(
    ("service", "method", "path", "expected"),
    [
        ("graph", "GET", EVENT, GRAPH_GET),
        ("graph", "GET", "/v1.0/users/u/calendarView/delta", GRAPH_GET),
        ("graph", "POST", "/v1.0/$batch", GRAPH_BATCH),
        ("graph", "post", "/beta/$batch/", GRAPH_BATCH),
        ("graph", "GET", "/v1.0/$batch", GRAPH_GET),  # not a batch: only a POST is one
        ("graph", "POST", "/v1.0/users/u/events", GRAPH_WRITE),
        ("graph", "PATCH", EVENT, GRAPH_WRITE),
        ("graph", "DELETE", EVENT, GRAPH_WRITE),
        ("graph", "POST", "/v1.0/subscriptions", GRAPH_WRITE),
        ("graph", "POST", "/v1.0/users/u/events/$batchlike", GRAPH_WRITE),  # the segment must be exactly $batch
        ("dime", "POST", "/import", DIME_IMPORT),
        ("dime", "POST", "/api/v1/Import", DIME_IMPORT),
        ("dime", "GET", "/resources", DIME_OTHER),
        ("dime", "POST", "/appointment", DIME_OTHER),
        ("table", "POST", "/devstoreaccount1/$batch", TABLE_BATCH),
        ("table", "GET", "/devstoreaccount1/links(PartitionKey='p',RowKey='r')", TABLE_POINT),
        ("table", "GET", "/devstoreaccount1/links()", TABLE_POINT),  # a query
        ("table", "PUT", "/devstoreaccount1/links(PartitionKey='p',RowKey='r')", TABLE_POINT),
        ("table", "POST", "/devstoreaccount1/Tables", TABLE_POINT),
        ("queue", "GET", "/devstoreaccount1/graph-notifications/messages", QUEUE_OP),
        ("queue", "DELETE", "/devstoreaccount1/graph-notifications/messages/id", QUEUE_OP),
        ("queue", "POST", "/devstoreaccount1/q/$batch", QUEUE_OP),  # queues have no batch class
    ],
)
def test_each_request_gets_its_class(service: str, method: str, path: str, expected: str) -> None:
    assert classify(service, method, path) == expected


def test_an_unknown_service_is_an_error_not_a_zero_delay() -> None:
    with pytest.raises(ValueError, match="blob"):
        classify("blob", "GET", "/devstoreaccount1/c/b")


def test_storage_endpoints_are_split_into_the_origin_to_proxy_and_the_account_path() -> None:
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5==;"
        "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
    )
    endpoints = _endpoints(connection)
    assert endpoints["AccountKey"] == "a2V5=="  # the key's own '=' survive
    assert _origin_and_path(endpoints["TableEndpoint"]) == ("http://127.0.0.1:10002", "/devstoreaccount1")
    assert _origin_and_path("https://acct.queue.core.windows.net") == ("https://acct.queue.core.windows.net", "")


def test_the_readme_states_the_delay_the_proxy_waits_for_each_class() -> None:
    """The README's table of the realistic profile is what the bench measured under: a figure
    changed in one place and not the other fails here."""
    from pathlib import Path

    from scripts.latency_proxy import PROFILES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {
        GRAPH_GET: "| Graph GET |",
        GRAPH_BATCH: "| Graph `$batch`",
        GRAPH_WRITE: "| Graph writes",
        DIME_IMPORT: "| Dime.Scheduler `/import` |",
        DIME_OTHER: "| other Dime.Scheduler calls |",
        TABLE_POINT: "| Azure Table Storage: point operation or query |",
        TABLE_BATCH: "| Azure Table Storage: entity-group transaction",
        QUEUE_OP: "| Azure Queue Storage: any operation |",
    }
    for request_class, start in rows.items():
        line = readme[readme.index(start) :].splitlines()[0]
        stated = line.split("|")[2].strip()
        assert stated == f"{PROFILES['realistic'].delay(request_class) * 1000:.0f} ms", (request_class, line)
