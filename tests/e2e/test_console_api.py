"""The management API additions the console uses: direction/errorCode filters, counts, settings."""

from __future__ import annotations

import json
from datetime import timedelta

import azure.functions as func
import pytest

import function_app
from shared.adapters.storage.transactions_store import transaction_store
from shared.core.transaction_query import QueryError, parse_filter
from shared.core.transactions import Status
from shared.usecases.admin.console import console_settings
from tests.e2e.test_transactions_admin import DAY, MAILBOXES, get, list_all, post, tx
from tests.host import call_function


def count(params: dict) -> tuple[int, dict]:
    return get(function_app.manage_transactions_count, params)


@pytest.fixture
def rows(services):
    made = [
        tx(MAILBOXES[0], DAY),  # DIME_REJECTED (tx's code for a failed one)
        tx(MAILBOXES[0], DAY + timedelta(hours=1)),
        tx(MAILBOXES[1], DAY + timedelta(hours=2), Status.SUCCEEDED),
        tx(MAILBOXES[1], DAY + timedelta(hours=3), Status.SUCCEEDED),
    ]
    made[1].error_code = "DIME_UNAVAILABLE"
    made[1].direction = made[3].direction = "dime-to-outlook"
    transaction_store(services).add_many(made)
    return made


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, 4),
        ({"status": "failed"}, 2),
        ({"status": "failed", "errorCode": "DIME_UNAVAILABLE"}, 1),
        ({"errorCode": "dime_rejected"}, 1),  # spelled as the codes are, whatever the case typed
        ({"direction": "dime-to-outlook"}, 2),
        ({"status": "succeeded", "direction": "outlook-to-dime"}, 1),
        ({"status": "failed", "mailbox": MAILBOXES[0], "direction": "dime-to-outlook"}, 1),
        ({"since": "2026-11-01T02:00:00Z"}, 2),
        ({"status": "archived"}, 0),
    ],
)
def test_count_and_list_agree_on_every_filter(rows, params, expected):
    status, body = count({**params, "code": "the-key"})  # the host passes ?code= along
    assert status == 200 and body == {"count": expected, "capped": False}
    assert len(list_all(params)) == expected


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"direction": "sideways"}, "unknown direction"),
        ({"errorCode": "<img src=x>"}, "errorCode must be an error code"),
        ({"status": "broken"}, "unknown status"),
        ({"colour": "red"}, "unknown parameter"),
        ({"since": "yesterday"}, "since must be an ISO 8601"),
    ],
)
def test_count_refuses_bad_filters_with_the_reason(services, params, reason):
    status, body = count(params)
    assert status == 400 and reason in body["error"]


def test_retry_and_archive_all_accept_the_new_filters(rows):
    status, body = post(
        function_app.manage_transactions_archive,
        {"all": True, "filter": {"direction": "dime-to-outlook", "errorCode": "DIME_UNAVAILABLE"}},
    )
    assert status == 200 and body["matched"] == 1
    assert count({"status": "failed"})[1]["count"] == 1
    assert count({"status": "archived", "direction": "dime-to-outlook"})[1]["count"] == 1


def test_parse_filter_keeps_the_existing_fields_and_rejects_unknown_ones():
    parsed = parse_filter({"status": "failed", "direction": "Outlook-To-Dime", "errorCode": " poison_message "})
    assert (parsed.status, parsed.direction, parsed.error_code) == (Status.FAILED, "outlook-to-dime", "POISON_MESSAGE")
    with pytest.raises(QueryError, match="unknown filter field"):
        parse_filter({"subject": "x"})


def test_console_settings_give_the_application_insights_link(services):
    status, body = get(function_app.manage_console_settings)
    assert status == 200 and body == {"applicationInsightsResourceId": None, "applicationInsightsUrl": None}
    component = (
        "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg"
        "/providers/Microsoft.Insights/components/appi"
    )
    services.settings = type(services.settings)(**{**services.settings.__dict__, "appinsights_resource_id": component})
    answer = json.loads(console_settings({}, services).body)
    assert answer["applicationInsightsUrl"] == f"https://portal.azure.com/#resource{component}/logs"
    assert console_settings({"verbose": "1"}, services).status == 400  # unknown parameters: 400 everywhere


def test_the_console_route_is_anonymous_and_the_settings_route_is_guarded(services):
    from tests.unit.test_function_app import indexed_functions

    levels = {
        f.get_function_name(): f.get_trigger().auth_level
        for f in indexed_functions()
        if f.get_trigger().type == "httpTrigger"
    }

    def level(name: str) -> str:
        return str(getattr(levels[name], "value", levels[name])).lower()

    assert level("console") == "anonymous"
    # anonymous to the host (whose admin level takes only the master key), guarded by the app itself
    assert level("manage_console_settings") == level("manage_transactions_count") == "anonymous"
    response = call_function(function_app.console, func.HttpRequest("GET", "/api/console/", body=b""))
    assert response.status_code == 200
    unkeyed = func.HttpRequest("GET", "/api/manage/console", body=b"")
    assert call_function(function_app.manage_console_settings, unkeyed).status_code == 401
