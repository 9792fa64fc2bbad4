"""`/api/manage/rules` through the real functions: read, validate, save conditionally."""

from __future__ import annotations

import pytest

from tests.runner import runner_for

PLACEHOLDERS = {
    "name": "Placeholders stay out",
    "when": {"field": "category", "op": "in", "value": ["PLACEHOLDER", "TEMP"]},
    "then": {"action": "skip"},
}
SICK = {
    "name": "Sick days are out of office",
    "when": {"field": "category", "op": "equals", "value": "SICK"},
    "then": {"action": "place", "showAs": "oof", "sensitivity": "private", "subject": "Absent: {Subject}"},
}


@pytest.fixture
def runner(azurite, graph, dime):
    with runner_for(azurite, graph, dime) as runner:
        yield runner


def test_no_rules_on_empty_storage_then_save_and_read_back(runner):
    status, body = runner.request("GET", "manage/rules")
    assert (status, body["rules"], body["version"]) == (200, [], None)

    status, saved = runner.request("PUT", "manage/rules", {"rules": [PLACEHOLDERS, SICK], "version": None})
    assert status == 200, saved
    assert [r["name"] for r in saved["rules"]] == [PLACEHOLDERS["name"], SICK["name"]]
    assert saved["version"]

    status, body = runner.request("GET", "manage/rules")
    assert status == 200
    assert body["rules"] == [PLACEHOLDERS, SICK]
    assert body["version"] == saved["version"]


def test_a_rule_that_cannot_be_read_is_refused_naming_where_and_nothing_is_saved(runner):
    broken = {**SICK, "then": {"action": "place", "showAs": "away"}}
    status, body = runner.request("PUT", "manage/rules", {"rules": [PLACEHOLDERS, broken], "version": None})
    assert status == 400
    assert body["error"].startswith("rules[1].then.showAs: one of free")
    assert runner.request("GET", "manage/rules")[1]["rules"] == []
    assert runner.request("PUT", "manage/rules", [PLACEHOLDERS])[0] == 400  # not the documented shape


def test_two_administrators_saving_at_once_do_not_overwrite_each_other(runner):
    first = runner.request("PUT", "manage/rules", {"rules": [PLACEHOLDERS], "version": None})[1]["version"]
    # A second administrator who read "no rules" cannot save over the first one's.
    assert runner.request("PUT", "manage/rules", {"rules": [SICK], "version": None})[0] == 409
    second = runner.request("PUT", "manage/rules", {"rules": [SICK], "version": first})
    assert second[0] == 200
    assert runner.request("PUT", "manage/rules", {"rules": [], "version": first})[0] == 409  # stale
    assert runner.request("GET", "manage/rules")[1]["rules"] == [SICK]
