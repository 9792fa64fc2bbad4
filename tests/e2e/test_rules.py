"""Rules through the real functions and FakeDime's planning board: which appointments reach Outlook
and how they look there; a rule change applied to exactly the affected events; the breaker; the
preview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from shared.core.resources import resource_from_user
from tests.e2e.test_rules_admin import PLACEHOLDERS, SICK
from tests.runner import runner_for

SOON = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)


@pytest.fixture
def runner(azurite, graph, dime, monkeypatch):
    client = httpx.Client()
    monkeypatch.setattr(httpx, "post", client.post)
    with runner_for(azurite, graph, dime) as runner:
        yield runner
    client.close()


def onboard(runner, graph, dime, name: str) -> str:
    person = graph.add_user(mail=f"{name}@contoso.com")
    runner.services.store.put_resource(resource_from_user(person, runner.services.settings.default_consent))
    dime.board.add_resource(f"R-{name.upper()}", f"{name}@contoso.com")
    return person["id"]


def ours(graph, mailbox: str) -> dict[str, dict]:
    """Our events in a calendar, by subject."""
    return {
        e["subject"]: e
        for e in graph.events(mailbox)
        if any(p["id"] == TAG_PROPERTY_ID for p in e.get("singleValueExtendedProperties", []))
    }


def save(runner, rules: list[dict]) -> dict:
    version = runner.request("GET", "manage/rules")[1]["version"]
    status, body = runner.request("PUT", "manage/rules", {"rules": rules, "version": version})
    assert status == 200, body
    return body


def plan_week(runner, graph, dime) -> tuple[str, dict[str, str]]:
    jane = onboard(runner, graph, dime, "jane")
    assert runner.request("PUT", "manage/dime/hooks")[0] == 201
    day = timedelta(days=1)
    guids = {
        "Boiler check": dime.board.plan(
            "Boiler check", SOON, SOON + timedelta(hours=2), ["R-JANE"], category="SERVICE"
        ),
        "Hold for Globex": dime.board.plan(
            "Hold for Globex", SOON + timedelta(hours=3), SOON + timedelta(hours=4), ["R-JANE"], category="TEMP"
        ),
        "Flu": dime.board.plan("Flu", SOON + day, SOON + day + timedelta(hours=8), ["R-JANE"], category="SICK"),
    }
    return jane, guids


def test_a_placeholder_stays_out_and_a_sick_day_shows_as_out_of_office(runner, graph, dime):
    save(runner, [PLACEHOLDERS, SICK])
    jane, guids = plan_week(runner, graph, dime)
    dime.board.flush()
    runner.drain()

    events = ours(graph, jane)
    assert sorted(events) == ["Absent: Flu", "Boiler check"]
    assert (events["Absent: Flu"]["showAs"], events["Absent: Flu"]["sensitivity"]) == ("oof", "private")
    assert events["Boiler check"]["showAs"] == runner.services.settings.dime_event_show_as
    # Visible decisions: the unmatched report names the rule; the transaction records it.
    unmatched = runner.request("GET", "manage/unmatched")[1]["items"]
    assert [(u["subject"], u["reason"]) for u in unmatched] == [("Hold for Globex", "rule: Placeholders stay out")]
    reasons = {t.appointment_guid: t.reason for t in runner.services.store.transactions_of(jane)}
    assert reasons[guids["Flu"]] == "new (rule: Sick days are out of office)"
    assert reasons[guids["Boiler check"]] == "new"


def test_a_rule_change_removes_and_updates_exactly_the_affected_events(runner, graph, dime):
    jane, guids = plan_week(runner, graph, dime)
    dime.board.flush()
    runner.drain()
    assert sorted(ours(graph, jane)) == ["Boiler check", "Flu", "Hold for Globex"]  # no rules: today's behaviour
    untouched = ours(graph, jane)["Boiler check"]

    graph.reset_requests()
    answer = save(runner, [PLACEHOLDERS, SICK])
    assert answer["applying"] == "Applying them now to the calendars of 1 people."
    runner.drain()

    events = ours(graph, jane)
    assert sorted(events) == ["Absent: Flu", "Boiler check"]
    assert events["Absent: Flu"]["showAs"] == "oof"
    assert events["Boiler check"] == untouched  # not written again: its outcome did not change
    writes = [(r.method, r.path.rsplit("/", 1)[-1]) for r in graph.requests if r.method in ("POST", "PATCH", "DELETE")]
    ids = {e["id"] for e in graph.events(jane)}
    assert sorted(m for m, _ in writes) == ["DELETE", "PATCH"]  # the placeholder removed, the sick day reshaped
    assert untouched["id"] not in {target for _, target in writes} and ids
    reasons = [
        t.reason for t in runner.services.store.transactions_of(jane) if t.appointment_guid == guids["Hold for Globex"]
    ]
    assert "rule: Placeholders stay out" in reasons

    # And back: without rules the placeholder returns, the sick day looks as every other event.
    save(runner, [])
    runner.drain()
    events = ours(graph, jane)
    assert sorted(events) == ["Boiler check", "Flu", "Hold for Globex"]
    assert events["Flu"]["showAs"] == runner.services.settings.dime_event_show_as


def test_a_rule_set_that_would_remove_most_of_a_persons_events_is_held_back(runner, graph, dime):
    jane = onboard(runner, graph, dime, "jane")
    runner.request("PUT", "manage/dime/hooks")
    for n in range(8):
        dime.board.plan(f"Visit {n}", SOON + timedelta(days=n % 5, hours=n), SOON + timedelta(days=n % 5, hours=n + 1),
                        ["R-JANE"], category="SERVICE")  # fmt: skip
    dime.board.flush()
    runner.drain()
    assert len(ours(graph, jane)) == 8

    save(runner, [{"name": "No service visits", "when": {"field": "category", "op": "equals", "value": "service"},
                   "then": {"action": "skip"}}])  # fmt: skip
    runner.drain()
    assert len(ours(graph, jane)) == 8  # 8 removals of 8 events: more than the breaker allows
    alerts = [t for t in runner.services.store.transactions_of(jane) if t.error_code == "CIRCUIT_BREAKER_TRIPPED"]
    assert len(alerts) == 1 and "would delete 8" in alerts[0].message


def test_the_preview_shows_what_a_draft_would_change_per_person(runner, graph, dime):
    save(runner, [PLACEHOLDERS])
    jane, _ = plan_week(runner, graph, dime)
    dime.board.flush()
    runner.drain()
    before = {e["subject"]: e["changeKey"] for e in ours(graph, jane).values()}

    status, body = runner.request("POST", "manage/rules/preview", {"rules": [SICK]})
    assert status == 200, body
    assert body["counts"] == {"skipped": 0, "placed": 1, "changed": 1, "unchanged": 1}
    [person] = body["people"]
    assert person["person"] == "jane@contoso.com"
    assert [(c["subject"], c["change"], c["after"]["rule"]) for c in person["changes"]] == [
        ("Hold for Globex", "placed", None),
        ("Flu", "changed", "Sick days are out of office"),
    ]
    # A preview writes nothing.
    assert {e["subject"]: e["changeKey"] for e in ours(graph, jane).values()} == before
    assert runner.request("GET", "manage/rules")[1]["rules"] == [PLACEHOLDERS]
    status, body = runner.request("POST", "manage/rules/preview", {"rules": [{"name": "x"}]})
    assert status == 400 and body["error"].startswith("rules[0].then")
