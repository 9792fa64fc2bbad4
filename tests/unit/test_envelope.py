"""Dime.Scheduler's answers: keys read case-insensitively, failures inside a 200 (dimescheduler.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.adapters.dime import _inner_content
from shared.core.envelope import content_failure, get_ci
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


def test_resource_failures_keep_their_code() -> None:
    content = {"Error": "Resource not found", "Description": "No resource with e-mail 'x'."}
    with pytest.raises(SyncError) as caught:
        _inner_content({"Content": json.dumps(content), "StatusCode": 200})
    assert caught.value.code is ErrorCode.DIME_RESOURCE_UNKNOWN


@pytest.mark.parametrize("content", [SUCCESS, {"Error": ""}, {"Error": None, "Success": True}, {}])
def test_success_is_not_a_failure(content: dict[str, Any]) -> None:
    assert content_failure(content) is None


def test_get_ci_prefers_the_exact_key_and_ignores_non_dicts() -> None:
    assert get_ci({"id": 1, "Id": 2}, "Id") == 2
    assert get_ci({"ID": 3}, "id") == 3
    assert get_ci(["Id"], "Id") is None
