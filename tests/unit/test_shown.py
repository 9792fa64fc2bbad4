"""What the console shows, decided at write time (issue 19): the board's subject (masked for a
private event), the calendar's as placed, the person; and one appointment's timeline and board side."""

from __future__ import annotations

from dataclasses import replace

from shared.core.appointment_view import board_side, timeline
from shared.core.consent import Consent
from shared.core.links import Link
from shared.core.resources import Resource, resource_from_user
from shared.core.shown import Shown, described, in_calendar, on_board, shown_of
from shared.core.transactions import Status, Transaction
from tests.unit.test_appointments import make_event, map_event

JANE = Resource(
    "m-1", "jane.doe@contoso.com", "jane@contoso.com", Consent.parse(True, "busy", "normal"), display_name="Jane Doe"
)


def tx(row_key: str, created: str, **fields: object) -> Transaction:
    return Transaction("m-1", "outlook-to-dime", "upsert", Status.SUCCEEDED, created, id=row_key, **fields)  # type: ignore[arg-type]


def test_a_private_events_board_subject_is_the_masked_one():
    event = make_event(subject="Doctor: oncology", sensitivity="private")
    assert on_board(map_event(event)).subject == "Private appointment"
    assert on_board(map_event(event, private_details=True)).subject == "Doctor: oncology"


def test_the_board_start_is_iso_utc():
    shown = on_board(map_event(make_event(subject="Visit")))
    assert shown.subject == "Visit" and shown.start is not None
    assert shown.start.endswith("Z") and "T" in shown.start


def test_nothing_to_show_without_an_appointment_or_a_link():
    assert on_board(None) == Shown() and shown_of(None) == Shown()


def test_the_calendars_subject_is_the_placed_bodys_after_rules():
    assert in_calendar({"subject": "[Install] Heat pump"}, "2026-11-24T08:00:00+00:00") == Shown(
        "[Install] Heat pump", "2026-11-24T08:00:00Z"
    )
    assert in_calendar({"subject": 7}, None) == Shown(None, None)  # never a non-string as a subject


def test_a_link_remembers_what_it_was_written_with_and_old_links_have_nothing():
    link = Link("m-1", "e-1", "g-1", "outlook", None, None, "jane@contoso.com", "2026-11-01T00:00:00Z")
    assert shown_of(link) == Shown()
    assert shown_of(replace(link, subject="Visit", start="2026-11-24T08:00:00Z")) == Shown(
        "Visit", "2026-11-24T08:00:00Z"
    )
    assert replace(link, subject="Other") == link  # display only: never part of a link's identity


def test_described_adds_the_person_when_known_and_keeps_what_the_row_had_otherwise():
    row = described(tx("r1", "2026-11-01T08:00:00Z"), Shown("Visit", "2026-11-24T08:00:00Z"), JANE)
    assert (row.subject, row.start, row.person, row.upn) == ("Visit", "2026-11-24T08:00:00Z", "Jane Doe", JANE.upn)
    kept = described(tx("r2", "2026-11-01T08:00:00Z", person="Old Name"), Shown("X"), None)
    assert (kept.person, kept.subject) == ("Old Name", "X")


def test_onboarding_reads_the_display_name():
    user = {"id": "ABC", "userPrincipalName": "jane@contoso.com", "mail": None, "displayName": "Jane Doe"}
    assert resource_from_user(user, JANE.consent).display_name == "Jane Doe"
    assert resource_from_user({**user, "displayName": None}, JANE.consent).display_name == ""


def test_the_timeline_is_newest_first_once_each_and_bounded():
    rows = [tx(f"2026110{i}T000000000000Z-a", f"2026-11-0{i}T00:00:00Z") for i in range(1, 6)]
    shown, more = timeline([*rows, rows[2]], limit=3)
    assert [t.id for t in shown] == [rows[4].id, rows[3].id, rows[2].id] and more is True
    assert timeline(rows[:2], limit=3) == ([rows[1], rows[0]], False)


def test_the_board_side_of_a_stored_publication():
    publication = {
        "subject": "Install",
        "start": "2026-11-24T08:00:00+00:00",
        "end": "2026-11-24T12:00:00Z",
        "job_no": "JOB-1",
        "task_no": None,
        "appointment_no": "7",
        "last_modified": None,
        "assignments": [{"resource_no": "R-JANE", "email": None}, {"resource_no": None, "email": "tom@contoso.com"}],
    }
    side = board_side(publication)
    assert side is not None
    assert (side["subject"], side["start"], side["end"]) == ("Install", "2026-11-24T08:00:00Z", "2026-11-24T12:00:00Z")
    assert side["resources"] == ["R-JANE", "tom@contoso.com"] and side["jobNo"] == "JOB-1"
    assert board_side(None) is None and board_side({}) is None
