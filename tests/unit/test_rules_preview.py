"""The preview of a draft rule set, and the facts a publication gives the rules."""

from __future__ import annotations

import pytest

from shared.core.dime_to_outlook.publication import Publication, parse_publication
from shared.core.dime_to_outlook.rule_facts import facts_of
from shared.core.dime_to_outlook.rules import read_rules
from shared.core.dime_to_outlook.rules_preview import Placement, preview


def rule(name: str, field: str, op: str, value: object, then: dict) -> dict:
    return {"name": name, "when": {"field": field, "op": op, "value": value}, "then": then}


SICK = rule("sick", "category", "equals", "SICK", {"action": "place", "showAs": "oof"})
TEMP = rule("temp", "category", "equals", "TEMP", {"action": "skip"})
LONG = rule("long", "duration", "greaterThan", "4h", {"action": "skip"})


def placement(person: str, guid: str, category: str | None, minutes: float = 60) -> Placement:
    facts = {"category": category, "duration": minutes, "subject": f"visit {guid}"}
    return Placement(person, "R-" + person.upper(), guid, f"visit {guid}", f"2026-12-0{guid}T09:00:00+00:00", facts)


def test_preview_lists_what_the_draft_changes_per_person_and_counts_everything():
    current = read_rules([TEMP])
    draft = read_rules([SICK, LONG])
    result = preview(
        current,
        draft,
        [
            placement("ann", "1", "TEMP"),  # skipped today, placed with the draft
            placement("ann", "2", "SICK"),  # placed both, now out of office
            placement("ben", "3", None, 300),  # placed today, skipped with the draft (long)
            placement("ben", "4", None),  # unchanged
        ],
    )
    assert result["counts"] == {"skipped": 1, "placed": 1, "changed": 1, "unchanged": 1}
    ann, ben = result["people"]
    assert ann["person"] == "ann" and [(c["appointmentGuid"], c["change"]) for c in ann["changes"]] == [
        ("1", "placed"),
        ("2", "changed"),
    ]
    assert ann["changes"][0]["before"] == {"action": "skip", "rule": "temp"}
    assert ann["changes"][1]["after"] == {"action": "place", "rule": "sick", "showAs": "oof"}
    assert ben["changes"] == [
        {
            "appointmentGuid": "3",
            "resourceNo": "R-BEN",
            "subject": "visit 3",
            "start": "2026-12-03T09:00:00+00:00",
            "change": "skipped",
            "before": {"action": "place", "rule": None},
            "after": {"action": "skip", "rule": "long"},
        }
    ]


def test_the_same_rules_preview_no_change():
    rules = read_rules([SICK, TEMP])
    result = preview(rules, rules, [placement("ann", "1", "SICK"), placement("ann", "2", "TEMP")])
    assert result == {"counts": {"skipped": 0, "placed": 0, "changed": 0, "unchanged": 2}, "people": []}


def test_facts_of_a_publication():
    pub = parse_publication(
        {
            "AppointmentGuid": "9f0c4a52-3f39-4c53-a3b6-2b4f3c1f1a10",
            "Subject": "Boiler",
            "StartDate": "2026-12-07T09:00:00Z",
            "EndDate": "2026-12-07T11:30:00Z",
            "Importance": 1,
            "Category": {"DisplayName": "SERVICE"},
            "TimeMarker": {"Name": "IN PROCESS"},
            "Task": {"TaskNo": "T1", "Job": {"JobNo": "J1", "SourceApp": "BC"}},
        }
    )
    facts = facts_of(pub, "R-JANE")
    assert facts["duration"] == 150
    assert (facts["category"], facts["timeMarker"], facts["jobNo"], facts["taskNo"]) == (
        "SERVICE",
        "IN PROCESS",
        "J1",
        "T1",
    )
    assert (facts["sourceApp"], facts["importance"], facts["resourceNo"], facts["subject"]) == (
        "BC",
        1,
        "R-JANE",
        "Boiler",
    )
    assert read_rules([LONG]).evaluate(facts).rule is None
    assert (
        read_rules([{**LONG, "when": {"field": "duration", "op": "greaterThan", "value": "2h"}}])
        .evaluate(facts)
        .skipped
    )


VENDOR_EXAMPLE = [  # docs.dimescheduler.com, Exchange connector, "Rule Engine": service visits flagged for Exchange
    {
        "name": "Service visits in process, flagged for Exchange",
        "when": {
            "all": [
                {"field": "category", "op": "equals", "value": "SERVICE"},
                {"field": "timeMarker", "op": "equals", "value": "IN PROCESS"},
                {"field": "field:SyncToExchange", "op": "equals", "value": True},
            ]
        },
        "then": {"action": "place"},
    },
    {"name": "Everything else stays out", "then": {"action": "skip"}},
]


@pytest.mark.parametrize(
    ("task", "values", "placed"),
    [
        ({"TaskNo": "T1", "SyncToExchange": True}, None, True),  # a task field
        ({"TaskNo": "T1"}, [{"FieldName": "SyncToExchange", "Value": True}], True),  # a field value
        ({"TaskNo": "T1"}, [{"Code": "synctoexchange", "Value": "true"}], True),
        ({"TaskNo": "T1"}, {"SyncToExchange": True}, True),  # one object of name → value
        ({"TaskNo": "T1", "SyncToExchange": True}, [{"Name": "SyncToExchange", "Value": False}], False),  # values win
        ({"TaskNo": "T1"}, [{"Unreadable": 1}, "x", {"Name": "Other", "Value": {"deep": 1}}], False),  # missing
        ({"TaskNo": "T1"}, None, False),
    ],
)
def test_free_fields_from_the_task_and_appointment_field_values(task, values, placed):
    item = {
        "AppointmentGuid": "9f0c4a52-3f39-4c53-a3b6-2b4f3c1f1a10",
        "StartDate": "2026-12-07T09:00:00Z",
        "EndDate": "2026-12-07T10:00:00Z",
        "Category": {"Name": "Service"},
        "TimeMarker": {"Name": "In process"},
        "Task": {**task, "Job": {"JobNo": "J1"}},
    }
    if values is not None:
        item["AppointmentFieldValues"] = values
    pub = parse_publication(item)
    assert Publication.from_message(pub.to_message()) == pub  # through the queue and back
    verdict = read_rules(VENDOR_EXAMPLE).evaluate(facts_of(pub, "R-JANE"))
    assert verdict.skipped is not placed
