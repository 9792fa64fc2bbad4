"""The triage of one Outlook change, as tables: what is still read, then what happens.

Each row starts from what an entry knows (a notification, a run's page, a series expansion) and
feeds the triage the answers a read would give, in the order it asks for them; the row states the
reads asked and the final verdict. The rules here used to live in sync_event, notification_batch,
sync_batch and delta_sync, each with its own copy.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.consent import Consent
from shared.core.decision import Action
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from shared.core.events import event_from_graph
from shared.core.ids import appointment_guid
from shared.core.links import DIME_ORIGIN, Link
from shared.core.outlook_to_dime.appointments import appointment_for
from shared.core.outlook_to_dime.triage import (
    Change,
    Need,
    Policy,
    Race,
    Step,
    as_message,
    failure,
    known_from,
    needed,
    unchanged,
    upserted_link,
    verdict,
)
from shared.core.resources import Resource
from shared.core.transactions import ErrorCode, Status, SyncError

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
POLICY = Policy(tenant_id="tenant", private_details=False, zone=UTC, days_back=30, days_forward=180)
CONSENT = Consent(True, frozenset({"tentative", "busy", "oof", "workingElsewhere"}), frozenset({"normal", "personal"}))
RESOURCE = Resource(object_id="m", upn="jane@contoso.com", email="jane@contoso.com", consent=CONSENT)
EVENT_ID = "AAMkAGI2TG93AAA="


def graph_event(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": EVENT_ID,
        "changeKey": "ck-2",
        "subject": "Planning meeting",
        "body": {"contentType": "text", "content": "body"},
        "start": {"dateTime": "2026-11-23T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-23T10:30:00.0000000", "timeZone": "UTC"},
        "isAllDay": False,
        "showAs": "busy",
        "sensitivity": "normal",
        "importance": "normal",
        "categories": [],
        "isCancelled": False,
        "type": "singleInstance",
    }
    document.update(overrides)
    return document


def link_of(document: dict[str, Any], **overrides: Any) -> Link:
    """The link an accepted upsert of `document` left (so a delete has its kept values)."""
    event = event_from_graph(document)
    guid = appointment_guid("tenant", "m", EVENT_ID)
    appointment = appointment_for(event, guid, RESOURCE.email, private_details=False, zone=UTC)
    link = replace(upserted_link(RESOURCE, EVENT_ID, guid, event, appointment, None, NOW), etag="W/1")
    return replace(link, **overrides)


LINKED = link_of(graph_event(changeKey="ck-1"))  # what we synchronised last: changeKey ck-1, same content


def run(change: Change, answers: dict[Need, Any], race: Race | None = None) -> tuple[list[Need], Any]:
    """Ask the triage until it needs nothing; answer each need from `answers` (as a read would)."""
    known = known_from(change)
    if race is not None:
        known.race = race
    asked: list[Need] = []
    while (need := needed(change, known)) is not None:
        assert need not in asked, f"asked {need} twice"
        asked.append(need)
        answer = answers[need]
        if need is Need.LINK:
            known.link, known.link_read = answer, True
        elif need is Need.EVENT:
            known.event, known.event_read = answer, True
        elif need is Need.SERIES_LINKS:
            known.series_links = answer
        elif need is Need.TOMBSTONE:
            known.tombstoned = answer
        else:
            known.listed = answer
    return asked, verdict(change, known, RESOURCE, POLICY, NOW)


def note(**values: Any) -> Change:
    """A notification: a new event must be listed by the primary calendar."""
    return Change("m", EVENT_ID, prove_new=True, **values)


ROWS = [
    # (name, change, answers, reads asked, step, action, reason)
    ("unchanged changeKey: no Graph call", note(change_key="ck-1"), {Need.LINK: LINKED}, [Need.LINK],
     Step.DONE, Action.SKIP, "unchanged"),
    ("unchanged, but the link is unproven: read and prove", note(change_key="ck-1"),
     {Need.LINK: replace(LINKED, unproven=True), Need.EVENT: graph_event(changeKey="ck-1"), Need.PROOF: True},
     [Need.LINK, Need.EVENT, Need.PROOF], Step.DONE, Action.SKIP, "unchanged"),
    ("unproven link the calendar no longer lists: delete", note(change_key="ck-1"),
     {Need.LINK: replace(LINKED, unproven=True), Need.EVENT: graph_event(changeKey="ck-1"), Need.PROOF: False},
     [Need.LINK, Need.EVENT, Need.PROOF], Step.WRITE, Action.DELETE, "event-deleted"),
    ("claimed delete never synced: no Graph call", note(claimed_deleted=True),
     {Need.LINK: None, Need.SERIES_LINKS: []}, [Need.LINK, Need.SERIES_LINKS], Step.DONE, Action.SKIP,
     "deleted-never-synced"),
    ("claimed delete of a master whose instances are linked", note(claimed_deleted=True),
     {Need.LINK: None, Need.SERIES_LINKS: [LINKED], Need.EVENT: None},
     [Need.LINK, Need.SERIES_LINKS, Need.EVENT], Step.SERIES_GONE, Action.SKIP, "series-master"),
    ("claimed delete, Graph still answers, listed: the claim is false", note(claimed_deleted=True, change_key="ck-1"),
     {Need.LINK: LINKED, Need.EVENT: graph_event(changeKey="ck-1"), Need.PROOF: True},
     [Need.LINK, Need.EVENT, Need.PROOF], Step.DONE, Action.SKIP, "unchanged"),
    ("claimed delete, answers GET but not listed: deleted", note(claimed_deleted=True),
     {Need.LINK: LINKED, Need.EVENT: graph_event(), Need.PROOF: False},
     [Need.LINK, Need.EVENT, Need.PROOF], Step.WRITE, Action.DELETE, "event-deleted"),
    ("404 of a linked event: deleted", note(change_key="ck-9"), {Need.LINK: LINKED, Need.EVENT: None},
     [Need.LINK, Need.EVENT], Step.WRITE, Action.DELETE, "event-deleted"),
    ("404, never linked, no series", note(), {Need.LINK: None, Need.EVENT: None, Need.SERIES_LINKS: []},
     [Need.LINK, Need.EVENT, Need.SERIES_LINKS], Step.DONE, Action.SKIP, "deleted-never-synced"),
    ("new from a notification, listed: upsert", note(change_key="ck-2"),
     {Need.LINK: None, Need.EVENT: graph_event(), Need.PROOF: True},
     [Need.LINK, Need.EVENT, Need.PROOF], Step.WRITE, Action.UPSERT, "new"),
    ("new from a notification, not listed (another calendar)", note(),
     {Need.LINK: None, Need.EVENT: graph_event(), Need.PROOF: False},
     [Need.LINK, Need.EVENT, Need.PROOF], Step.DONE, Action.SKIP, "not-in-calendar"),
    ("new from a run, no tombstone: no proof", Change("m", EVENT_ID, event_json=graph_event()),
     {Need.LINK: None, Need.TOMBSTONE: False}, [Need.LINK, Need.TOMBSTONE], Step.WRITE, Action.UPSERT, "new"),
    ("new from a run, tombstoned, not listed", Change("m", EVENT_ID, event_json=graph_event()),
     {Need.LINK: None, Need.TOMBSTONE: True, Need.PROOF: False}, [Need.LINK, Need.TOMBSTONE, Need.PROOF],
     Step.DONE, Action.SKIP, "not-in-calendar"),
    ("a partial item (delta) is read again in full", Change("m", EVENT_ID, event_json={"id": EVENT_ID}),
     {Need.LINK: LINKED, Need.EVENT: graph_event(subject="Changed")}, [Need.LINK, Need.EVENT],
     Step.WRITE, Action.UPSERT, "changed"),
    ("same content, new changeKey: relink", note(change_key="ck-2"), {Need.LINK: LINKED, Need.EVENT: graph_event()},
     [Need.LINK, Need.EVENT], Step.WRITE, Action.RELINK, "content-unchanged"),
    ("answered under another id", note(), {Need.LINK: None, Need.EVENT: graph_event(id=EVENT_ID.swapcase())},
     [Need.LINK, Need.EVENT], Step.DONE, Action.SKIP, "id-mismatch"),
    ("a series master is expanded", note(), {Need.LINK: None, Need.EVENT: graph_event(type="seriesMaster")},
     [Need.LINK, Need.EVENT], Step.SERIES, Action.SKIP, "series-master"),
    ("our own tagged event (planner-owned)", note(),
     {Need.LINK: None, Need.EVENT: graph_event(singleValueExtendedProperties=[{"id": TAG_PROPERTY_ID, "value": "g"}]),
      Need.PROOF: True}, [Need.LINK, Need.EVENT, Need.PROOF], Step.PLANNER, Action.SKIP, "planner-owned"),
    ("a link of the other direction (planner-owned)", note(change_key="ck-2"),
     {Need.LINK: replace(LINKED, origin=DIME_ORIGIN), Need.EVENT: graph_event()}, [Need.LINK, Need.EVENT],
     Step.PLANNER, Action.SKIP, "planner-owned"),
    ("private: removed from the board", note(change_key="ck-2"),
     {Need.LINK: LINKED, Need.EVENT: graph_event(sensitivity="private")}, [Need.LINK, Need.EVENT],
     Step.WRITE, Action.DELETE, "sensitivity-not-consented"),
    ("outside the window, never linked: nothing", Change("m", EVENT_ID),
     {Need.LINK: None, Need.EVENT: graph_event(start={"dateTime": "2028-01-01T09:00:00", "timeZone": "UTC"},
                                               end={"dateTime": "2028-01-01T10:00:00", "timeZone": "UTC"}),
      Need.TOMBSTONE: False}, [Need.LINK, Need.EVENT, Need.TOMBSTONE], Step.DONE, Action.SKIP, "outside-window"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "change", "answers", "asked", "step", "action", "reason"), ROWS, ids=[r[0] for r in ROWS]
)
def test_triage_table(name, change, answers, asked, step, action, reason) -> None:
    got_asked, got = run(change, answers)
    assert (got_asked, got.step, got.decision.action, got.decision.reason) == (asked, step, action, reason)


def test_a_gone_event_deletes_through_the_breaker_and_leaves_a_tombstone_unless_a_set_passed_it() -> None:
    _, got = run(note(change_key="ck-9"), {Need.LINK: LINKED, Need.EVENT: None})
    assert got.gone and got.breaker_needed and got.call is not None
    _, private = run(note(change_key="ck-2"), {Need.LINK: LINKED, Need.EVENT: graph_event(sensitivity="private")})
    assert not private.gone and not private.breaker_needed  # a refusal is no absence


def test_a_run_delete_needs_no_read_at_all() -> None:
    change = Change("m", EVENT_ID, gone=True, link=LINKED, link_known=True, breaker_passed=True)
    asked, got = run(change, {})
    assert asked == [] and got.decision.action is Action.DELETE and got.gone


def test_a_proven_unproven_link_is_saved_as_ordinary() -> None:
    _, got = run(
        note(change_key="ck-1"),
        {Need.LINK: replace(LINKED, unproven=True), Need.EVENT: graph_event(changeKey="ck-1"), Need.PROOF: True},
    )
    assert got.fresh is not None and not got.fresh.unproven


def test_a_new_event_proven_back_clears_its_tombstone() -> None:
    _, got = run(note(), {Need.LINK: None, Need.EVENT: graph_event(), Need.PROOF: True})
    assert got.clear_tombstone and got.fresh is not None and got.fresh.etag is None


def test_after_a_lost_race_the_same_changekey_is_read_and_written_again() -> None:
    """We wrote content the winner's link does not record: rewrite, although nothing changed."""
    written = link_of(graph_event(subject="Ours"))
    asked, got = run(note(change_key="ck-1"), {Need.LINK: LINKED, Need.EVENT: graph_event(changeKey="ck-1")},
                     race=Race(upserted=written))  # fmt: skip
    assert asked == [Need.LINK, Need.EVENT]
    assert (got.decision.action, got.decision.reason) == (Action.UPSERT, "rewrite-after-race")


def test_an_unreadable_event_fails_with_its_own_code() -> None:
    _, got = run(note(), {Need.LINK: LINKED, Need.EVENT: graph_event(start={"dateTime": "soon"})})
    assert got.step is Step.FAIL and got.error is not None and got.error.code is ErrorCode.EVENT_UNREADABLE


def test_a_delete_without_kept_values_fails_instead_of_guessing() -> None:
    _, got = run(note(), {Need.LINK: replace(LINKED, kept_values=None), Need.EVENT: None})
    assert got.step is Step.FAIL and got.error is not None and got.error.code is ErrorCode.DIME_REJECTED


def test_unchanged_never_holds_for_an_unproven_link_or_an_unknown_key() -> None:
    assert unchanged(LINKED, "ck-1")
    assert not unchanged(LINKED, None)
    assert not unchanged(None, "ck-1")
    assert not unchanged(replace(LINKED, unproven=True), "ck-1")


def test_a_failure_carries_a_message_the_worker_can_run_again() -> None:
    change = Change("m", EVENT_ID, gone=True, link=LINKED, link_known=True)
    row = failure(change, SyncError(ErrorCode.DIME_REJECTED, "no"), "tenant", NOW)
    assert row.status is Status.FAILED and row.operation == "delete"
    assert row.payload == {"queue": "graph-notifications", "message": as_message(change)}
    assert as_message(change)["changeType"] == "deleted" and as_message(change)["changeKey"] is None
    original = {"mailboxId": "m", "eventId": EVENT_ID, "changeType": "updated", "changeKey": "x"}
    assert as_message(note(message=original)) is original
