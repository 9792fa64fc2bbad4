"""What Dime.Scheduler really posts (the body in the https://github.com/hbulens/dela README and the
`appointment-incoming` schema of https://github.com/dime-scheduler/powerplatform-connector/blob/main/src/apiDefinition.swagger.json):
offset-less local times, `Resources` in several item shapes, the internal `Id` without a GUID,
future LastModifiedDates, bodies nested deeper than any real payload; and the board's zone for
Outlook's all-day events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.dime_to_outlook.decision import appointment_refusal
from shared.core.dime_to_outlook.links import AppointmentState
from shared.core.dime_to_outlook.publication import (
    FUTURE_TOLERANCE,
    MAX_NESTING,
    Assignment,
    Publication,
    PublicationError,
    clamped,
    nested_deeper_than,
    parse_publication,
)
from shared.core.events import Event
from shared.core.outlook_to_dime.appointments import appointment_for
from shared.core.transactions import ErrorCode
from shared.core.zones import UnknownZone, canonical_zone, localize, zone_named

GUID = "6c1b6a2e-1111-4c3d-9e8f-000000000001"
BRUSSELS = zone_named("Europe/Brussels")

# The body a Dime.Scheduler Webhook connector posted (hbulens/dela README), with the Resources items
# the README elides filled in with the plainest shape.
CONNECTOR = {
    "Id": 1212993,
    "AppointmentNo": "rVjMXrDY",
    "StartDate": "2025-10-02T09:00:00",
    "EndDate": "2025-10-02T17:00:00",
    "Subject": "Sick",
    "Body": " - \r\n",
    "CreatedUser": "planner@contoso.com",
    "Resources": [{"ResourceNo": "R-JANE", "Email": "Jane@Contoso.com", "DisplayName": "Jane"}],
    "Task": {"Description": "Absence", "Job": {"JobNo": "ABS", "Description": "Absences"}, "Category": {}},
    "Category": {"Name": "SICK", "Color": "#ff0000"},
}


def utc(text: str) -> str:
    return datetime.fromisoformat(text).isoformat()


# Times -----------------------------------------------------------------------------------------


def test_the_real_connector_payload_is_local_time_in_dime_scheduler_s_zone():
    pub = parse_publication(CONNECTOR, BRUSSELS, by_id=True)
    assert (pub.start, pub.end) == (utc("2025-10-02T07:00:00+00:00"), utc("2025-10-02T15:00:00+00:00"))  # CEST
    assert pub.category == "SICK" and pub.subject == "Sick" and pub.appointment_no == "rVjMXrDY"
    assert pub.assignments == (Assignment("R-JANE", "jane@contoso.com"),) and pub.assignments_known
    assert pub.guid == "" and not pub.resolved and pub.appointment_id == "1212993"


@pytest.mark.parametrize(
    ("local", "expected_utc"),
    [
        # Spring forward, 2026-03-29: 02:00-03:00 does not exist in Europe/Brussels. Read with the
        # offset before the change (+01:00): 02:30 lands at 03:30 CEST.
        ("2026-03-29T01:59:00", "2026-03-29T00:59:00+00:00"),
        ("2026-03-29T02:00:00", "2026-03-29T01:00:00+00:00"),
        ("2026-03-29T02:30:00", "2026-03-29T01:30:00+00:00"),
        ("2026-03-29T03:00:00", "2026-03-29T01:00:00+00:00"),
        ("2026-03-29T03:30:00", "2026-03-29T01:30:00+00:00"),
        # Fall back, 2026-10-25: 02:00-03:00 exists twice. Standard time (CET, +01:00), as .NET's
        # TimeZoneInfo assumes for an ambiguous time.
        ("2026-10-25T01:59:00", "2026-10-24T23:59:00+00:00"),
        ("2026-10-25T02:00:00", "2026-10-25T01:00:00+00:00"),
        ("2026-10-25T02:30:00", "2026-10-25T01:30:00+00:00"),
        ("2026-10-25T03:00:00", "2026-10-25T02:00:00+00:00"),
    ],
)
def test_both_dst_edges_of_europe_brussels(local, expected_utc):
    pub = parse_publication({"AppointmentGuid": GUID, "StartDate": local, "EndDate": local}, BRUSSELS)
    assert pub.start == expected_utc


@pytest.mark.parametrize(
    ("zone", "local", "expected_utc"),
    [
        ("Asia/Kolkata", "2026-07-01T09:00:00", "2026-07-01T03:30:00+00:00"),  # +05:30, no DST
        ("India Standard Time", "2026-07-01T09:00:00", "2026-07-01T03:30:00+00:00"),  # its Windows name
        ("Australia/Adelaide", "2026-01-15T09:00:00", "2026-01-14T22:30:00+00:00"),  # +10:30 (ACDT)
        ("Australia/Adelaide", "2026-07-15T09:00:00", "2026-07-14T23:30:00+00:00"),  # +09:30 (ACST)
        ("Australia/Adelaide", "2026-04-05T02:30:00", "2026-04-04T17:00:00+00:00"),  # twice: standard time
        ("Australia/Adelaide", "2026-10-04T02:30:00", "2026-10-03T17:00:00+00:00"),  # never: +09:30 (03:30 ACDT)
        ("Romance Standard Time", "2026-07-01T09:00:00", "2026-07-01T07:00:00+00:00"),
        ("W. Europe Standard Time", "2026-01-05T09:00:00", "2026-01-05T08:00:00+00:00"),
    ],
)
def test_half_hour_zones_and_windows_names(zone, local, expected_utc):
    pub = parse_publication({"AppointmentGuid": GUID, "StartDate": local, "EndDate": local}, zone_named(zone))
    assert pub.start == expected_utc


def test_an_offset_in_the_payload_wins_over_the_zone():
    item = {"AppointmentGuid": GUID, "StartDate": "2026-07-01T09:00:00Z", "EndDate": "2026-07-01T12:00:00+02:00"}
    pub = parse_publication(item, BRUSSELS)
    assert (pub.start, pub.end) == ("2026-07-01T09:00:00+00:00", "2026-07-01T10:00:00+00:00")


def test_unknown_zone_names():
    with pytest.raises(UnknownZone):
        canonical_zone("Europe/Atlantis")
    assert canonical_zone("Romance Standard Time") == "Europe/Paris"
    assert localize(datetime(2026, 1, 1, 12), UTC) == datetime(2026, 1, 1, 12, tzinfo=UTC)


# Outlook all-day events go to the board as midnights of Dime.Scheduler's zone --------------------


def all_day(first: datetime, after_last: datetime) -> Event:
    return Event(
        id="AAMk-1",
        change_key="ck",
        ical_uid="uid",
        subject="Holiday",
        body="",
        start=first,
        end=after_last,
        is_all_day=True,
        show_as="oof",
        sensitivity="normal",
        importance="normal",
        categories=(),
        is_cancelled=False,
        type="singleInstance",
    )


@pytest.mark.parametrize(
    ("zone", "first", "after_last", "start", "end"),
    [
        ("Europe/Brussels", (2026, 11, 23), (2026, 11, 24), "2026-11-22 23:00:00Z", "2026-11-23 23:00:00Z"),
        ("Europe/Brussels", (2026, 7, 1), (2026, 7, 3), "2026-06-30 22:00:00Z", "2026-07-02 22:00:00Z"),
        # Across the spring edge: a 23-hour day on the board.
        ("Europe/Brussels", (2026, 3, 29), (2026, 3, 30), "2026-03-28 23:00:00Z", "2026-03-29 22:00:00Z"),
        ("Asia/Kolkata", (2026, 11, 23), (2026, 11, 24), "2026-11-22 18:30:00Z", "2026-11-23 18:30:00Z"),
        ("UTC", (2026, 11, 23), (2026, 11, 24), "2026-11-23 00:00:00Z", "2026-11-24 00:00:00Z"),
    ],
)
def test_an_outlook_all_day_event_is_local_midnight_to_midnight_on_the_board(zone, first, after_last, start, end):
    event = all_day(datetime(*first, tzinfo=UTC), datetime(*after_last, tzinfo=UTC))
    appointment = appointment_for(event, GUID, "jane@contoso.com", private_details=False, zone=zone_named(zone))
    assert (appointment.start, appointment.end) == (start, end)


def test_a_timed_event_is_not_moved_by_the_zone():
    event = all_day(datetime(2026, 11, 23, 9, tzinfo=UTC), datetime(2026, 11, 23, 10, tzinfo=UTC))
    timed = Event(**{**event.__dict__, "is_all_day": False})
    appointment = appointment_for(timed, GUID, "jane@contoso.com", private_details=False, zone=BRUSSELS)
    assert (appointment.start, appointment.end) == ("2026-11-23 09:00:00Z", "2026-11-23 10:00:00Z")


# Resources --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resources",
    [
        [{"ResourceNo": "R1", "Email": "J@C.com", "DisplayName": "Jane"}],  # connector, plainest reading
        [{"Resource": {"ResourceNo": "R1", "Email": "J@C.com"}}],  # nested as in Assignments
        [{"ResourceId": 7, "Resource": {"ResourceNo": "R1", "Email": "J@C.com"}}],
        [{"resourceNo": "R1", "email": "j@c.com"}],  # camelCase
        [{"ResourceId": 7, "ResourceNo": "R1", "ResourceEmail": "J@C.com"}],
        {"ResourceNo": "R1", "Email": "J@C.com"},  # a lone object rather than a list
    ],
)
def test_every_resource_item_shape_the_evidence_allows(resources):
    for key in ("Resources", "Assignments", "resources"):
        pub = parse_publication({"AppointmentGuid": GUID, key: resources})
        assert pub.assignments == (Assignment("R1", "j@c.com"),) and pub.assignments_known, key


@pytest.mark.parametrize(("items", "numbers"), [(["R1", "R2"], ["R1", "R2"]), ([12, " R3 "], ["12", "R3"])])
def test_a_bare_resource_number(items, numbers):
    pub = parse_publication({"AppointmentGuid": GUID, "Resources": items})
    assert [a.resource_no for a in pub.assignments] == numbers and all(a.email is None for a in pub.assignments)


def test_both_lists_are_read():
    item = {"AppointmentGuid": GUID, "Assignments": [{"Resource": {"ResourceNo": "R1"}}], "Resources": ["R2"]}
    assert {a.resource_no for a in parse_publication(item).assignments} == {"R1", "R2"}


@pytest.mark.parametrize(
    ("resources", "shape"),
    [
        ([{"ResourceId": 7}], "{ResourceId}"),  # the internal id only: no number, no e-mail
        ([{"Name": "Jane", "Id": 3}], "{Name, Id}"),
        ([{"Resource": {"DisplayName": "Jane"}}], "{Resource}"),
        ([None], "null"),
        ([True], "a boolean"),
        ([1.5], "a number"),
        ([""], "an empty text"),
        ([[]], "an array"),
        ([{"ResourceNo": "R1"}, {"ResourceId": 8}], "{ResourceId}"),  # one unreadable item refuses the list
        ("R1,R2", "text"),
        (17, "a number"),
    ],
)
def test_a_list_we_cannot_read_is_an_error_naming_the_shape_never_unassigned(resources, shape):
    with pytest.raises(PublicationError) as caught:
        parse_publication({"AppointmentGuid": GUID, "Resources": resources})
    assert caught.value.code is ErrorCode.PUBLICATION_UNREADABLE_RESOURCES
    assert "Resources" in str(caught.value) and shape in str(caught.value)


def test_only_an_explicitly_empty_list_means_unassigned():
    assert parse_publication({"AppointmentGuid": GUID, "Resources": []}).assignments_known
    assert parse_publication({"AppointmentGuid": GUID, "Assignments": []}).assignments == ()
    assert not parse_publication({"AppointmentGuid": GUID}).assignments_known
    assert not parse_publication({"AppointmentGuid": GUID, "Resources": None}).assignments_known  # null: not said


@pytest.mark.parametrize(
    ("category", "name"),
    [({"Name": "SICK", "Color": "#f00"}, "SICK"), ({"DisplayName": "Install", "Color": "#f00"}, "Install")],
)
def test_category_in_both_shapes(category, name):
    assert parse_publication({"AppointmentGuid": GUID, "Category": category}).category == name


# The internal Id -------------------------------------------------------------------------------


def test_id_without_guid_is_accepted_only_for_the_worker_to_resolve():
    with pytest.raises(PublicationError, match="AppointmentGuid"):
        parse_publication({"Id": 1212993})  # the reconcile's listing: never resolved by id
    pub = parse_publication({"Id": "1212993"}, by_id=True)
    assert (pub.guid, pub.appointment_id, pub.resolved) == ("", "1212993", False)
    assert Publication.from_message(json.loads(json.dumps(pub.to_message()))) == pub


@pytest.mark.parametrize(
    "item", [{}, {"Id": 0}, {"Id": -4}, {"Id": True}, {"Id": "abc"}, {"Id": 5, "AppointmentGuid": "not-a-guid"}]
)
def test_neither_a_guid_nor_an_id_is_an_error(item):
    with pytest.raises(PublicationError, match="AppointmentGuid"):
        parse_publication(item, by_id=True)


def test_an_old_queue_message_without_appointment_id_still_reads():
    message = parse_publication({"AppointmentGuid": GUID}).to_message()
    del message["appointment_id"]
    assert Publication.from_message(message).appointment_id is None


# Time travel -----------------------------------------------------------------------------------

RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("modified", "expected"),
    [
        ("2026-11-20T09:00:00Z", "2026-11-20T09:00:00+00:00"),  # the past: untouched
        ("2026-11-20T10:05:00Z", "2026-11-20T10:05:00+00:00"),  # within the tolerance (clock skew)
        ("2026-11-20T10:05:01Z", "2026-11-20T10:00:00+00:00"),  # beyond: the time of receipt
        ("2099-01-01T00:00:00Z", "2026-11-20T10:00:00+00:00"),
    ],
)
def test_a_last_modified_date_in_the_future_is_clamped_to_receipt(modified, expected):
    assert timedelta(minutes=5) == FUTURE_TOLERANCE
    pub = parse_publication({"AppointmentGuid": GUID, "LastModifiedDate": modified})
    assert clamped(pub, RECEIVED).last_modified == expected
    assert clamped(parse_publication({"AppointmentGuid": GUID}), RECEIVED).last_modified is None


def test_the_reconcile_overrides_a_stale_verdict_nothing_else_does():
    state = AppointmentState(GUID, "2099-01-01T00:00:00+00:00", False, {}, False)
    pub = parse_publication({"AppointmentGuid": GUID, "LastModifiedDate": "2026-11-20T10:00:00Z"})
    assert appointment_refusal(pub, state, False) == "stale"
    assert appointment_refusal(pub, state, False, authoritative=True) is None
    outlook = AppointmentState(GUID, None, False, {}, True)
    assert appointment_refusal(pub, outlook, False, authoritative=True) == "outlook-origin"
    # A tombstone newer than the listing (the delete arrived while the reconcile was listing) stands.
    tombstone = AppointmentState(GUID, "2026-11-20T11:00:00+00:00", True, {}, False)
    assert appointment_refusal(pub, tombstone, False, authoritative=True) == "deleted"
    newer = parse_publication({"AppointmentGuid": GUID, "LastModifiedDate": "2026-11-20T12:00:00Z"})
    assert appointment_refusal(newer, tombstone, False, authoritative=True) is None


# Nesting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b"[" * 50_000, True),
        (b"{" * 50_000, True),
        (b'{"a":' * 40 + b"1" + b"}" * 40, True),
        (b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1), True),
        (b"[" * MAX_NESTING + b"]" * MAX_NESTING, False),
        (b"[]" * 100_000, False),  # many brackets, shallow
        (b'["' + b"[" * 50_000 + b'"]', False),  # brackets inside a string do not nest
        (b'["\\"' + b"[" * 50_000 + b'"]', False),  # nor after an escaped quote
        (b'["' + b'\\"' * 1000 + b"[" * 100, False),  # an unterminated string runs to the end
        (b'"' * 10_000 + b"[" * 40, True),  # empty strings, then brackets outside any string
        (b'"' * 10_001 + b"[" * 40, False),  # the last quote opens a string that never ends
        (json.dumps(CONNECTOR).encode(), False),
        ((b"[" * 32 + b"[]," * 50 + b"]" * 32), True),  # 33 levels under many shallow pairs
        ((b"[" * 31 + b"[]," * 50 + b"]" * 31), False),
        ((b"[" * MAX_NESTING + b"]" * MAX_NESTING) * 1000, False),  # many blocks at the limit
        (b"]" + b"[" * 40, True),  # closers first do not hide the opens after them
    ],
)
def test_nesting_is_measured_without_parsing(body, deep):
    assert nested_deeper_than(body) is deep
