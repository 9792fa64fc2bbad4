"""The pure step of the Dime.Scheduler → Outlook pipeline (shared/usecases/dime_to_outlook/pipeline/decide.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.core.decision import Action
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.dime_to_outlook.outlook_event import desired_hash
from shared.core.dime_to_outlook.publication import Assignment, Publication
from shared.settings import load_settings
from shared.usecases.dime_to_outlook.pipeline.decide import Target, body_for, next_state, steps
from tests.conftest import settings_env

NOW = "2026-12-06T12:00:00+00:00"


class _Account:
    connection_string = "UseDevelopmentStorage=true"


SETTINGS = load_settings(settings_env(_Account(), "https://graph.microsoft.com/v1.0", "https://dime.invalid"))


def pub(last_modified: str | None = "2026-12-01T10:00:00+00:00", **changes) -> Publication:
    base = Publication(
        guid="g-1",
        appointment_no="A1",
        subject="Install",
        body=None,
        start="2026-12-08T08:00:00+00:00",
        end="2026-12-08T09:00:00+00:00",
        importance=0,
        last_modified=last_modified,
        job_no=None,
        task_no=None,
        source_app=None,
        category=None,
        time_marker=None,
        assignments=(Assignment("R-JANE", None),),
    )
    return replace(base, **changes)


def link(mailbox: str, resource: str = "R-JANE", event_id: str | None = "ev", **changes) -> EventLink:
    made = EventLink("g-1", mailbox, resource, f"{resource}@x.test", event_id, 1, "sent", None, NOW)
    return replace(made, **changes)


def test_next_state_writes_nothing_when_nothing_changed():
    first = next_state(pub(), None, deleting=False, authoritative=False, unmatched=[], now=NOW)
    assert first is not None and first.publication == pub().to_message()
    again = next_state(pub(), replace(first, etag="e1"), deleting=False, authoritative=False, unmatched=[], now="later")
    assert again is None


@pytest.mark.parametrize(
    ("authoritative", "kept"), [(False, "2026-12-05T00:00:00+00:00"), (True, "2026-12-01T10:00:00+00:00")]
)
def test_last_modified_only_moves_back_for_dime_schedulers_own_state(authoritative, kept):
    newer = AppointmentState("g-1", "2026-12-05T00:00:00+00:00", False, pub().to_message(), etag="e1")
    fresh = next_state(pub(), newer, deleting=False, authoritative=authoritative, unmatched=[("R-X", "why")], now=NOW)
    assert fresh is not None and fresh.last_modified == kept and fresh.etag == "e1"


def test_a_delete_keeps_the_last_applied_publication():
    applied = AppointmentState("g-1", "2026-11-30T00:00:00+00:00", False, {"applied": 1})
    fresh = next_state(pub(), applied, deleting=True, authoritative=False, unmatched=[], now=NOW)
    assert fresh is not None and fresh.deleted and fresh.publication == {"applied": 1}


def test_steps_per_mailbox_in_order_with_reasons():
    target = Target("mbx-b", "R-JANE", "jane@x.test")
    unchanged = link("mbx-b", sent_hash=desired_hash(body_for(SETTINGS, pub(), "R-JANE")))
    links = {"mbx-b": unchanged, "mbx-a": link("mbx-a", "R-TOM"), "mbx-c": link("mbx-c", event_id=None)}
    planned, held = steps(SETTINGS, pub(), {"mbx-b": target}, {}, [], links, deleting=False, hold_rule_deletes=False)
    assert [(s.mailbox, s.decision.action, s.decision.reason) for s in planned] == [
        ("mbx-a", Action.DELETE, "unassigned"),
        ("mbx-b", Action.SKIP, "unchanged"),
    ]  # mbx-c names no event: nothing to do there
    assert held == []


def test_a_rules_deletes_are_held_for_the_callers_breaker_only_when_asked():
    links = {"mbx-a": link("mbx-a", "R-TOM")}
    unmatched = [("R-TOM", "rule: no weekends")]
    planned, held = steps(SETTINGS, pub(), {}, {}, unmatched, links, deleting=False, hold_rule_deletes=True)
    assert [(s.decision.action, s.decision.reason) for s in planned] == [(Action.SKIP, "held: rule: no weekends")]
    assert held == [(links["mbx-a"], "rule: no weekends")]
    planned, held = steps(SETTINGS, pub(), {}, {}, unmatched, links, deleting=False, hold_rule_deletes=False)
    assert [(s.decision.action, s.decision.reason) for s in planned] == [(Action.DELETE, "rule: no weekends")]
    assert held == []


def test_a_deleted_appointment_deletes_every_event_it_has():
    links = {"mbx-a": link("mbx-a"), "mbx-b": link("mbx-b", "R-TOM")}
    planned, _ = steps(SETTINGS, pub(), {}, {}, [], links, deleting=True, hold_rule_deletes=True)
    assert {(s.mailbox, s.decision.action, s.decision.reason) for s in planned} == {
        ("mbx-a", Action.DELETE, "appointment-deleted"),
        ("mbx-b", Action.DELETE, "appointment-deleted"),
    }
