"""The rule language: reading, evaluation (every operator, missing fields), templates."""

from __future__ import annotations

import pytest

from shared.core.dime_to_outlook.rules import (
    DEFAULT,
    OPERATORS,
    Outcome,
    RuleError,
    read_rules,
    render,
    write_rules,
)

FACTS = {
    "sourceApp": "BC",
    "jobNo": "J-1001",
    "taskNo": "T-10",
    "appointmentNo": "A-7",
    "category": "Service",
    "timeMarker": "IN PROCESS",
    "subject": "Boiler check, Globex",
    "importance": 1,
    "resourceNo": "R-JANE",
    "duration": 90.0,
    "fields": {"SyncToExchange": True, "Priority": "3", "Region": "North"},
}


def one(condition: dict | None, then: dict | None = None) -> object:
    rule = {"name": "r", "then": then or {"action": "skip"}}
    if condition is not None:
        rule["when"] = condition
    return read_rules([rule])


def holds(condition: dict, facts: dict = FACTS) -> bool:
    return one(condition).evaluate(facts).skipped


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "category", "op": "equals", "value": "SERVICE"}, True),  # case-insensitive
        ({"field": "category", "op": "equals", "value": "Repair"}, False),
        ({"field": "category", "op": "notEquals", "value": "Repair"}, True),
        ({"field": "category", "op": "notEquals", "value": "service"}, False),
        ({"field": "timeMarker", "op": "in", "value": ["DONE", "in process"]}, True),
        ({"field": "timeMarker", "op": "in", "value": ["DONE"]}, False),
        ({"field": "jobNo", "op": "startsWith", "value": "j-10"}, True),
        ({"field": "jobNo", "op": "startsWith", "value": "1001"}, False),
        ({"field": "subject", "op": "contains", "value": "globex"}, True),
        ({"field": "subject", "op": "contains", "value": "initech"}, False),
        ({"field": "taskNo", "op": "isEmpty"}, False),
        ({"field": "importance", "op": "equals", "value": 1}, True),
        ({"field": "importance", "op": "in", "value": [0, 2]}, False),
        ({"field": "importance", "op": "greaterThan", "value": 0}, True),
        ({"field": "importance", "op": "lessThan", "value": 1}, False),
        ({"field": "duration", "op": "greaterThan", "value": "1h"}, True),
        ({"field": "duration", "op": "greaterThan", "value": "PT1H30M"}, False),
        ({"field": "duration", "op": "lessThan", "value": "2h"}, True),
        ({"field": "duration", "op": "equals", "value": "1h30m"}, True),
        ({"field": "duration", "op": "equals", "value": 90}, True),
        ({"field": "resourceNo", "op": "equals", "value": "r-jane"}, True),
        ({"field": "sourceApp", "op": "in", "value": ["BC", "NAV"]}, True),
        ({"field": "appointmentNo", "op": "equals", "value": "A-8"}, False),
        ({"field": "field:synctoexchange", "op": "equals", "value": True}, True),  # free fields by any case
        ({"field": "field:SyncToExchange", "op": "equals", "value": "false"}, False),
        ({"field": "field:Priority", "op": "greaterThan", "value": 2}, True),
        ({"field": "field:Priority", "op": "lessThan", "value": "2"}, False),
        ({"field": "field:Region", "op": "greaterThan", "value": 2}, False),  # not a number: never greater
        ({"field": "field:Region", "op": "startsWith", "value": "no"}, True),
    ],
)
def test_every_operator_on_present_fields(condition: dict, expected: bool) -> None:
    assert holds(condition) is expected


MISSING = {"subject": "x"}  # no category, no time marker, no duration, no free fields


@pytest.mark.parametrize("op", sorted(OPERATORS))
@pytest.mark.parametrize("field", ["category", "duration", "importance", "field:SyncToExchange"])
def test_every_operator_on_a_missing_field_is_false_except_is_empty(op: str, field: str) -> None:
    kind = {"category": "text", "duration": "duration", "importance": "number"}.get(field, "free")
    if kind not in OPERATORS[op]:
        with pytest.raises(RuleError, match="does not apply"):
            one({"field": field, "op": op, "value": "x"})
        return
    value = {"in": [1], "isEmpty": None}.get(op, 1)
    condition = {"field": field, "op": op} if op == "isEmpty" else {"field": field, "op": op, "value": value}
    assert holds(condition, MISSING) is (op == "isEmpty")


@pytest.mark.parametrize("empty", ["", "   ", [], None])
def test_blank_values_count_as_missing(empty: object) -> None:
    facts = {**FACTS, "category": empty}
    assert holds({"field": "category", "op": "isEmpty"}, facts)
    assert not holds({"field": "category", "op": "notEquals", "value": "Service"}, facts)


def test_groups_all_any_not() -> None:
    service = {"field": "category", "op": "equals", "value": "service"}
    flagged = {"field": "field:SyncToExchange", "op": "equals", "value": True}
    other = {"field": "category", "op": "equals", "value": "repair"}
    assert holds({"all": [service, flagged]})
    assert not holds({"all": [service, other]})
    assert holds({"any": [other, flagged]})
    assert not holds({"any": [other]})
    assert holds({"not": other})
    assert not holds({"not": {"all": [service, flagged]}})
    assert holds({"all": [{"any": [other, service]}, {"not": other}]})


def test_first_matching_rule_wins_and_no_match_is_todays_behaviour() -> None:
    rules = read_rules(
        [
            {"name": "off", "enabled": False, "then": {"action": "skip"}},
            {"name": "placeholders", "when": {"field": "category", "op": "equals", "value": "TEMP"},
             "then": {"action": "skip"}},
            {"name": "service", "when": {"field": "category", "op": "equals", "value": "service"},
             "then": {"action": "place", "showAs": "tentative"}},
            {"name": "catch-all", "then": {"action": "place", "showAs": "busy"}},
        ]
    )  # fmt: skip
    verdict = rules.evaluate(FACTS)
    assert (verdict.rule, verdict.outcome.show_as, verdict.skipped) == ("service", "tentative", False)
    verdict = rules.evaluate({**FACTS, "category": "temp"})
    assert (verdict.rule, verdict.skipped) == ("placeholders", True)
    assert rules.evaluate({**FACTS, "category": "other"}).rule == "catch-all"
    assert read_rules([]).evaluate(FACTS) == DEFAULT
    assert DEFAULT.rule is None and DEFAULT.outcome == Outcome("place")


def test_outcome_overrides_are_read() -> None:
    then = {
        "action": "place",
        "showAs": "oof",
        "sensitivity": "private",
        "categories": ["Absence", " Sick "],
        "subject": "{Subject} · {JobNo}",
        "body": "Job {JobNo}\nfield {field:Region}",
        "reminder": False,
    }
    outcome = one(None, then).evaluate(FACTS).outcome
    assert outcome == Outcome("place", "oof", "private", ("Absence", "Sick"), then["subject"], then["body"], False)


def test_round_trip_through_json() -> None:
    document = [
        {
            "name": "Sick is out of office",
            "when": {
                "any": [
                    {"field": "category", "op": "equals", "value": "sick"},
                    {"not": {"field": "timeMarker", "op": "isEmpty"}},
                    {"field": "duration", "op": "in", "value": [60, 480]},
                ]
            },
            "then": {"action": "place", "showAs": "oof", "reminder": False},
        },
        {"name": "rest", "enabled": False, "then": {"action": "skip"}},
    ]
    rules = read_rules(document)
    assert read_rules(write_rules(rules)) == rules
    assert read_rules({"rules": document}) == rules


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x"}, r"rules: expected a list"),
        ([{"then": {"action": "skip"}}], r"rules\[0\]\.name"),
        ([{"name": "x"}], r"rules\[0\]\.then: an outcome is required"),
        ([{"name": "x", "then": {"action": "drop"}}], r"rules\[0\]\.then\.action"),
        ([{"name": "x", "then": {"action": "skip", "showAs": "oof"}}], r"has no look; remove showAs"),
        ([{"name": "x", "then": {"action": "place", "showAs": "away"}}], r"then\.showAs: one of free"),
        ([{"name": "x", "then": {"action": "place", "sensitivity": "secret"}}], r"then\.sensitivity"),
        ([{"name": "x", "then": {"action": "place", "categories": "Red"}}], r"then\.categories"),
        ([{"name": "x", "then": {"action": "place", "reminder": "no"}}], r"then\.reminder: true or false"),
        ([{"name": "x", "then": {"action": "place", "subject": "{Subject.__class__}"}}], r"unknown field"),
        ([{"name": "x", "then": {"action": "place", "subject": "{0}"}}], r"unknown field \{0\}"),
        ([{"name": "x", "then": {"action": "place", "body": "a } b"}}], r"a lone '\}'"),
        ([{"name": "x", "then": {"action": "place", "colour": "red"}}], r"unknown key 'colour'"),
        ([{"name": "x", "when": {"field": "colour", "op": "equals", "value": 1}, "then": {"action": "skip"}}],
         r"rules\[0\]\.when\.field: 'colour' is not a field"),
        ([{"name": "x", "when": {"field": "category", "op": "like", "value": 1}, "then": {"action": "skip"}}],
         r"when\.op: 'like' is not an operator"),
        ([{"name": "x", "when": {"field": "duration", "op": "contains", "value": "1"}, "then": {"action": "skip"}}],
         r"'contains' does not apply to duration"),
        ([{"name": "x", "when": {"field": "duration", "op": "greaterThan", "value": "long"},
           "then": {"action": "skip"}}],
         r"when\.value: 'long' is not minutes or a duration"),
        ([{"name": "x", "when": {"field": "category", "op": "equals"}, "then": {"action": "skip"}}],
         r"'equals' needs a value"),
        ([{"name": "x", "when": {"field": "category", "op": "in", "value": []}, "then": {"action": "skip"}}],
         r"'in' takes a list"),
        ([{"name": "x", "when": {"any": []}, "then": {"action": "skip"}}], r"when\.any: a non-empty list"),
        ([{"name": "x", "when": {"any": [{"all": [{"field": "category", "op": "equals", "value": {}}]}]},
           "then": {"action": "skip"}}], r"when\.any\[0\]\.all\[0\]\.value: expected text"),
        ([{"name": "x", "when": {"all": [], "any": []}, "then": {"action": "skip"}}], r"exactly one of"),
        ([{"name": "A", "then": {"action": "skip"}}, {"name": "a", "then": {"action": "skip"}}], r"used twice"),
    ],
)  # fmt: skip
def test_unreadable_rules_name_where_and_why(document: object, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        read_rules(document)


def test_nesting_and_size_are_bounded() -> None:
    condition: dict = {"field": "category", "op": "isEmpty"}
    for _ in range(10):
        condition = {"not": condition}
    with pytest.raises(RuleError, match="nest at most"):
        one(condition)
    many = {"any": [{"field": "category", "op": "isEmpty"}] * 150}
    with pytest.raises(RuleError, match="at most 100 conditions"):
        one(many)
    with pytest.raises(RuleError, match="at most 200 rules"):
        read_rules([{"name": f"r{n}", "then": {"action": "skip"}} for n in range(201)])


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{Subject} · {JobNo}", "Boiler check, Globex · J-1001"),
        ("{TimeMarker} / {field:region}", "IN PROCESS / North"),
        ("{{literal}} {ResourceNo}", "{literal} R-JANE"),
        ("Task {TaskNo}{field:Missing}", "Task T-10"),
    ],
)
def test_templates_render_named_fields_only(template: str, expected: str) -> None:
    assert render(template, FACTS) == expected
