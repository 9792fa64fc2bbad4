"""The Dime.Scheduler → Outlook pure core: parsing publications, the event we write, the decision."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from shared.core.decision import Action
from shared.core.dime_to_outlook.decision import appointment_refusal, decide_event
from shared.core.dime_to_outlook.eligibility import (
    DIRECTORY,
    MAX_ASSIGNMENTS,
    DimeResource,
    assignments_refusal,
    directory_entry,
    onboarded_mailboxes,
    refusal,
    resources_from_listing,
    target_email,
)
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.dime_to_outlook.outlook_event import (
    desired_hash,
    event_body,
    same_content,
    stored_hash,
    subject_of,
    transaction_id,
)
from shared.core.dime_to_outlook.publication import (
    Assignment,
    PublicationError,
    items_of,
    parse_publication,
)
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID, tag_of
from shared.core.events import event_from_graph

GUID = "6c1b6a2e-1111-4c3d-9e8f-000000000001"
PASCAL = {
    "id": 17,
    "appointmentNo": "APP-1",
    "AppointmentGuid": GUID.upper(),
    "Subject": "Install",
    "Body": "Bring the ladder",
    "StartDate": "2026-11-24T09:00:00+01:00",
    "EndDate": "2026-11-24T11:00:00+01:00",
    "Importance": 1,
    "LastModifiedDate": "2026-11-20T10:00:00Z",
    "Task": {"TaskNo": "T1", "Job": {"SourceApp": "BC", "SourceType": "JOB", "JobNo": "J1"}},
    "Category": {"DisplayName": "Install", "Color": "#f00"},
    "TimeMarker": {"Name": "Urgent", "Color": "#0f0"},
    "Assignments": [{"ResourceId": 1, "Resource": {"ResourceNo": "R1", "Email": "Jane@Contoso.com"}}],
}


def test_pascal_schema():
    pub = parse_publication(PASCAL)
    assert pub.guid == GUID and pub.appointment_no == "APP-1"
    assert (pub.start, pub.end) == ("2026-11-24T08:00:00+00:00", "2026-11-24T10:00:00+00:00")
    assert (pub.job_no, pub.task_no, pub.source_app) == ("J1", "T1", "BC")
    assert (pub.category, pub.time_marker, pub.importance) == ("Install", "Urgent", 1)
    assert pub.assignments == (Assignment("R1", "jane@contoso.com"),)
    assert pub.last_modified == "2026-11-20T10:00:00+00:00"


def test_flat_camelcase_and_naive_times_in_the_configured_zone():
    flat = {"appointmentGuid": GUID, "start": "2026-07-01T09:00:00", "end": "2026-07-01T10:00:00", "resourceNo": "R2"}
    pub = parse_publication(flat, ZoneInfo("Europe/Brussels"))
    assert pub.start == "2026-07-01T07:00:00+00:00"
    assert pub.assignments == (Assignment("R2", None),)
    assert parse_publication(flat).start == "2026-07-01T09:00:00+00:00"


def test_round_trip_through_the_queue_message():
    pub = parse_publication(PASCAL)
    assert type(pub).from_message(pub.to_message()) == pub


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ("text", "JSON object"),
        ({}, "AppointmentGuid"),
        ({"AppointmentGuid": "not-a-guid"}, "AppointmentGuid"),
        ({"AppointmentGuid": GUID, "StartDate": "2026-11-24T09:00:00Z"}, "both"),
        ({"AppointmentGuid": GUID, "StartDate": "tomorrow", "EndDate": "later"}, "unreadable"),
        ({"AppointmentGuid": GUID, "StartDate": "2026-11-24T10:00:00Z", "EndDate": "2026-11-24T09:00:00Z"}, "ends"),
        ({"AppointmentGuid": GUID, "Importance": 7}, "Importance"),
        ({"AppointmentGuid": GUID, "Importance": True}, "Importance"),
    ],
)
def test_unreadable_items(item, why):
    with pytest.raises(PublicationError, match=why):
        parse_publication(item)


def test_items_of_object_array_and_envelope():
    assert items_of({"a": 1}) == [{"a": 1}]
    assert items_of([1, 2]) == [1, 2]
    assert items_of({"Value": [3]}) == [3]
    with pytest.raises(PublicationError):
        items_of("x")


def test_the_outlook_event():
    pub = parse_publication(PASCAL)
    body = event_body(pub, "R1", "busy", with_time_marker=True)
    assert body["subject"] == "Install" and body["showAs"] == "busy" and body["importance"] == "high"
    assert body["categories"] == ["Install", "Urgent"] and "attendees" not in body
    assert body["start"] == {"dateTime": "2026-11-24T08:00:00", "timeZone": "UTC"}
    assert (
        body["body"]["content"].startswith("Bring the ladder")
        and "job J1, task T1, appointment APP-1" in body["body"]["content"]
    )
    assert body["singleValueExtendedProperties"] == [{"id": TAG_PROPERTY_ID, "value": f"{GUID}|R1"}]
    assert event_body(pub, "R1", "busy", with_time_marker=False)["categories"] == ["Install"]


def test_subject_fallbacks():
    base = {"AppointmentGuid": GUID}
    assert subject_of(parse_publication({**base, "Task": {"TaskNo": "T9", "Job": {"JobNo": "J9"}}})) == "J9 / T9"
    assert subject_of(parse_publication({**base, "appointmentNo": "A5"})) == "Appointment A5"


def test_transaction_ids_are_deterministic_per_generation():
    assert transaction_id(GUID, "M", 0) == transaction_id(GUID, "m", 0)
    assert transaction_id(GUID, "M", 0) != transaction_id(GUID, "M", 1)
    assert transaction_id(GUID, "M", 0) != transaction_id(GUID, "N", 0)


def graph_answer(body, **changes):
    document = {
        "id": "E1",
        "changeKey": "ck",
        "subject": body["subject"],
        "body": {"contentType": "text", "content": body["body"]["content"].replace("\n", "\r\n")},
        "start": {"dateTime": body["start"]["dateTime"] + ".0000000", "timeZone": "UTC"},
        "end": {"dateTime": body["end"]["dateTime"] + ".0000000", "timeZone": "UTC"},
        "showAs": body["showAs"],
        "importance": body.get("importance", "normal"),
        "categories": body["categories"],
        "isAllDay": False,
        "sensitivity": "normal",
        "isCancelled": False,
        "type": "singleInstance",
        "singleValueExtendedProperties": body["singleValueExtendedProperties"],
    }
    document.update(changes)
    return event_from_graph(document)


def test_same_content_tells_an_echo_from_an_edit():
    body = event_body(parse_publication(PASCAL), "R1", "busy", True)
    echo = graph_answer(body)
    assert same_content(echo, body) and echo.planner_tag == f"{GUID}|R1"
    assert not same_content(graph_answer(body, subject="Mine now"), body)
    moved = graph_answer(body, start={"dateTime": "2026-11-24T09:00:00", "timeZone": "UTC"})
    assert not same_content(moved, body)
    assert stored_hash(echo) != stored_hash(moved)


def test_desired_hash_moves_with_what_we_send():
    pub = parse_publication(PASCAL)
    moved = parse_publication({**PASCAL, "EndDate": "2026-11-24T12:00:00+01:00"})
    assert desired_hash(event_body(pub, "R1", "busy", False)) == desired_hash(event_body(pub, "R1", "busy", False))
    assert desired_hash(event_body(pub, "R1", "busy", False)) != desired_hash(event_body(moved, "R1", "busy", False))
    assert desired_hash(event_body(pub, "R1", "busy", False)) != desired_hash(event_body(pub, "R1", "free", False))


def link(event_id="E1", sent="h", dismissed=False):
    return EventLink(GUID, "m", "R1", "j@c", event_id, 0, sent, None, "", dismissed)


@pytest.mark.parametrize(
    ("desired", "why_not", "existing", "action", "reason"),
    [
        ("h", None, None, Action.UPSERT, "new"),
        ("h", None, link(event_id=None, sent=None), Action.UPSERT, "new"),
        ("h", None, link(), Action.SKIP, "unchanged"),
        ("h2", None, link(), Action.UPSERT, "changed"),
        (None, "unassigned", link(), Action.DELETE, "unassigned"),
        (None, "appointment-deleted", link(), Action.DELETE, "appointment-deleted"),
        (None, "integration-disabled", None, Action.SKIP, "integration-disabled"),
        (None, "unassigned", link(event_id=None), Action.SKIP, "unassigned"),
        ("h", None, link(event_id=None, dismissed=True), Action.SKIP, "deleted-in-outlook"),
        ("h2", None, link(event_id=None, dismissed=True), Action.UPSERT, "new"),
    ],
)
def test_decide_event(desired, why_not, existing, action, reason):
    decision = decide_event(desired, why_not, existing)
    assert (decision.action, decision.reason) == (action, reason)


def state(last_modified="2026-11-20T10:00:00+00:00", deleted=False, outlook=False):
    return AppointmentState(GUID, last_modified, deleted, {}, outlook)


@pytest.mark.parametrize(
    ("modified", "existing", "deleting", "expected"),
    [
        ("2026-11-20T10:00:00+00:00", None, False, None),
        ("2026-11-20T09:00:00+00:00", state(), False, "stale"),
        ("2026-11-20T10:00:00+00:00", state(), False, None),  # a duplicate: applied again, idempotent
        ("2026-11-20T11:00:00+00:00", state(), False, None),
        ("2026-11-20T10:00:00+00:00", state(deleted=True), False, "deleted"),
        (None, state(deleted=True), False, "deleted"),
        ("2026-11-20T11:00:00+00:00", state(deleted=True), False, None),  # strictly newer: back again
        ("2026-11-20T10:00:00+00:00", state(deleted=True), True, None),  # a repeated delete is harmless
        ("2026-11-20T12:00:00+00:00", state(outlook=True), False, "outlook-origin"),
    ],
)
def test_appointment_refusal(modified, existing, deleting, expected):
    pub = parse_publication(
        {"AppointmentGuid": GUID, "LastModifiedDate": modified} if modified else {"AppointmentGuid": GUID}
    )
    assert appointment_refusal(pub, existing, deleting) == expected


def test_eligibility():
    directory = resources_from_listing(
        [
            {"resourceNo": "R1", "email": "J@C.com", "exchangeIntegrationEnabled": True},
            {"ResourceNo": "R2", "Email": "t@c.com", "ExchangeIntegrationEnabled": False},
            {"resourceNo": "R3", "email": "", "exchangeIntegrationEnabled": True},
            {"email": "no-number@c.com"},
        ]
    )
    assert directory["R1"] == DimeResource("R1", "j@c.com", True) and set(directory) == {"R1", "R2", "R3"}
    assert refusal(Assignment("R1", None), directory["R1"], "m") is None
    assert refusal(Assignment("R1", None), directory["R1"], None) == "not-onboarded"
    assert refusal(Assignment("R1", None), directory["R1"], None, DIRECTORY) == "no-mailbox"
    assert refusal(Assignment("R2", None), directory["R2"], "m") == "integration-disabled"
    assert refusal(Assignment("R3", None), directory["R3"], "m") == "no-email"
    assert refusal(Assignment("R9", None), None, "m") == "resource-unknown"
    assert resources_from_listing({"value": [{"resourceNo": 5, "exchangeIntegrationEnabled": "true"}]})[
        "5"
    ].exchange_enabled


DIRECTORY_OF_THREE = {
    "R1": DimeResource("R1", "jane@c.com", True),
    "R2": DimeResource("R2", "tom@c.com", False),
    "R4": DimeResource("R4", "tom@c.com", True),
}


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        (Assignment("R1", None), ("jane@c.com", None)),
        (Assignment("R1", "JANE@c.com "), ("jane@c.com", None)),  # a hint that agrees
        # The payload's e-mail is never a target: one that disagrees refuses the assignment.
        (Assignment("R1", "ceo@c.com"), (None, "email-mismatch")),
        # A number the directory does not know is not matched by the e-mail beside it.
        (Assignment("R-FORGED", "jane@c.com"), (None, "resource-unknown")),
        # Only an e-mail: the directory's record holding it (one with Exchange integration on).
        (Assignment(None, "tom@c.com"), ("tom@c.com", None)),
        (Assignment(None, "ceo@c.com"), (None, "resource-unknown")),
        (Assignment("R2", "tom@c.com"), (None, "integration-disabled")),
    ],
)
def test_the_directory_chooses_the_target_never_the_payload(assignment, expected):
    entry = directory_entry(assignment, DIRECTORY_OF_THREE)
    assert target_email(assignment, entry) == expected
    if expected[1] is not None:
        assert refusal(assignment, entry, "any-mailbox") == expected[1]


def test_onboarded_mailboxes_by_email_and_upn_an_email_wins():
    from shared.core.consent import Consent
    from shared.core.resources import Resource

    consent = Consent.parse(True, "", "")
    people = [
        Resource("id-jane", "Jane@c.onmicrosoft.com", "Jane@C.com", consent),
        Resource("id-tom", "jane@c.com", "tom@c.com", consent),  # a UPN equal to Jane's e-mail
    ]
    assert onboarded_mailboxes(people) == {
        "jane@c.onmicrosoft.com": "id-jane",
        "jane@c.com": "id-jane",
        "tom@c.com": "id-tom",
    }


def test_at_most_a_hundred_assignments_per_appointment():
    def pub(count):
        return parse_publication({"AppointmentGuid": GUID, "Resources": [f"R{n}" for n in range(count)]})

    assert assignments_refusal(pub(MAX_ASSIGNMENTS)) is None
    assert "101 assigned resources" in assignments_refusal(pub(MAX_ASSIGNMENTS + 1))


def test_tag_is_read_case_insensitively_and_only_ours():
    assert tag_of({"singleValueExtendedProperties": [{"id": TAG_PROPERTY_ID.lower(), "value": "g|r"}]}) == "g|r"
    assert tag_of({"singleValueExtendedProperties": [{"id": "String {x} Name Other", "value": "g|r"}]}) is None
    assert tag_of({}) is None
