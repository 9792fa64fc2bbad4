"""Dime.Scheduler's answers: keys read case-insensitively, failures inside a 200 (the vendor's .NET SDK,
https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Import/Response/ImportResponse.cs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.adapters.dime import _inner_content, classify_http
from shared.core.envelope import classify_failure, content_failure, get_ci, sql_error_number
from shared.core.transactions import ErrorCode, SyncError

SUCCESS = {"Success": True, "Message": "1 call(s) imported.", "Appointments": [{"Id": 7, "Guid": "g"}]}


@pytest.mark.parametrize(
    "envelope",
    [
        {"content": json.dumps(SUCCESS), "contentType": "application/json", "statusCode": 200},
        {"Content": json.dumps(SUCCESS), "ContentType": "application/json", "StatusCode": 200},
        {"CONTENT": json.dumps(SUCCESS), "statuscode": "200"},
        SUCCESS,  # some answers are the content itself
    ],
)
def test_envelope_keys_are_read_case_insensitively(envelope: dict[str, Any]) -> None:
    assert _inner_content(envelope)["Appointments"] == [{"Id": 7, "Guid": "g"}]


@pytest.mark.parametrize(
    "content",
    [
        {"Success": False, "Message": "nothing imported"},
        {"success": "false"},
        {"Error": "Resource not found", "Description": "No resource with e-mail 'x'."},
        {"error": "Something"},
    ],
)
def test_a_failure_inside_a_200_with_inner_200_is_a_failure(content: dict[str, Any]) -> None:
    with pytest.raises(SyncError) as caught:
        _inner_content({"content": json.dumps(content), "statusCode": 200})
    assert caught.value.code in (ErrorCode.DIME_UNAVAILABLE, ErrorCode.DIME_RESOURCE_UNKNOWN)


def test_a_resource_failure_is_known_by_its_explicit_code_not_by_a_word() -> None:
    content = {"Error": "Resource not found", "Description": "No resource with e-mail 'x'.", "Code": "ResourceNotFound"}
    with pytest.raises(SyncError) as caught:
        _inner_content({"Content": json.dumps(content), "StatusCode": 400})
    assert caught.value.code is ErrorCode.DIME_RESOURCE_UNKNOWN
    del content["Code"]
    with pytest.raises(SyncError) as caught:
        _inner_content({"Content": json.dumps(content), "StatusCode": 400})
    assert caught.value.code is ErrorCode.DIME_REJECTED  # a 4xx that states no code: permanent


DEADLOCK = (
    "Transaction (Process ID 57) was deadlocked on lock resources with another process and has been chosen as "
    "the deadlock victim. Rerun the transaction."
)


@pytest.mark.parametrize("inner", [400, 500, 200])
def test_a_sql_deadlock_is_transient_whatever_the_inner_status(inner: int) -> None:
    """Error 1205's text says "lock resources": once filed as a permanent "resource unknown"."""
    content = {"Error": DEADLOCK, "Description": "Call 0 (mboc_upsertExchangeAppointment) failed."}
    if inner == 200:
        content["Success"] = False
    with pytest.raises(SyncError) as caught:
        _inner_content({"content": json.dumps(content), "statusCode": inner})
    assert caught.value.code is ErrorCode.DIME_UNAVAILABLE and caught.value.code.transient
    assert "SQL error 1205" in caught.value.message


@pytest.mark.parametrize(
    ("content", "number"),
    [
        ({"Error": DEADLOCK}, 1205),
        ({"Error": "SqlException: " + DEADLOCK.replace("on lock", "on communication buffer")}, 1205),
        ({"Error": "failed", "Number": 1205}, 1205),
        ({"error": "failed", "errorNumber": "40613"}, 40613),
        ({"Message": "Msg 2627, Level 14, State 1, Line 3 Violation of PRIMARY KEY constraint"}, 2627),
        ({"Error": "The resource lock could not be taken"}, None),  # words are not numbers
        ({"Error": "Resource not found"}, None),
        ("plain text " + DEADLOCK, 1205),
    ],
)
def test_sql_error_numbers_are_read_from_fields_or_sql_servers_own_formats(content: Any, number: int | None) -> None:
    assert sql_error_number(content) == number


@pytest.mark.parametrize(
    ("status", "content", "code"),
    [
        (400, {"Error": "Invalid parameter", "Description": "Start is not a date."}, ErrorCode.DIME_REJECTED),
        (422, {"title": "One or more validation errors occurred."}, ErrorCode.DIME_REJECTED),
        (400, {"Error": "Resource lock timeout"}, ErrorCode.DIME_REJECTED),  # a word decides nothing
        (400, {"Error": "Lock request time out period exceeded.", "Number": 1222}, ErrorCode.DIME_UNAVAILABLE),
        (400, {"Error": "Violation of PRIMARY KEY", "Number": 2627}, ErrorCode.DIME_REJECTED),
        (500, {"Error": "Resource not found"}, ErrorCode.DIME_UNAVAILABLE),  # 5xx: retried
        (503, None, ErrorCode.DIME_UNAVAILABLE),
        (0, {}, ErrorCode.DIME_UNAVAILABLE),
        (409, {}, ErrorCode.DIME_UNAVAILABLE),
        (429, {}, ErrorCode.DIME_THROTTLED),
        (401, {}, ErrorCode.DIME_AUTH_FAILED),
        (None, {"Error": "Something nobody documented"}, ErrorCode.DIME_UNAVAILABLE),  # unknown: retried
        (None, {"Error": "x", "ErrorCode": "RESOURCENOTFOUND"}, ErrorCode.DIME_RESOURCE_UNKNOWN),
    ],
)
def test_failures_are_classified_by_number_code_and_status(status: int | None, content: Any, code: ErrorCode) -> None:
    assert classify_failure(status, content) is code


def test_http_failures_with_a_deadlock_body_are_transient() -> None:
    assert classify_http(400, None, {"Error": DEADLOCK}).code is ErrorCode.DIME_UNAVAILABLE
    assert classify_http(400, None, {"Error": "Invalid parameter"}).code is ErrorCode.DIME_REJECTED
    assert "(404)" in classify_http(404, None, "not found").message  # delete_hook reads it


@pytest.mark.parametrize("content", [SUCCESS, {"Error": ""}, {"Error": None, "Success": True}, {}])
def test_success_is_not_a_failure(content: dict[str, Any]) -> None:
    assert content_failure(content) is None


def test_get_ci_prefers_the_exact_key_and_ignores_non_dicts() -> None:
    assert get_ci({"id": 1, "Id": 2}, "Id") == 2
    assert get_ci({"ID": 3}, "id") == 3
    assert get_ci(["Id"], "Id") is None
