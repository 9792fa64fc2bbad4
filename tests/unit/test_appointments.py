"""Outlook event -> Dime.Scheduler Exchange import call."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared.core.events import Event
from shared.core.outlook_to_dime.appointments import (
    PARAMETER_NAMES,
    Appointment,
    MissingDeleteValues,
    appointment_for,
    appointment_id_of,
    delete_call,
    format_time,
    upsert_call,
)

# From the Dime.Scheduler reference (not Outlook's order): written out by hand on purpose.
DIME_SHOW_AS = {"free": "1", "tentative": "2", "busy": "3", "oof": "4", "workingElsewhere": "5", "unknown": "6"}
DIME_SENSITIVITY = {"normal": "1", "personal": "2", "private": "3", "confidential": "4"}
DIME_IMPORTANCE = {"normal": "0", "high": "1", "low": "2"}
# https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Models/Exchange/ExchangeAppointment.cs: AppointmentId
# first ("0" when unknown), as the vendor's .NET SDK sends it.
WIRE_NAMES = [
    "AppointmentId",
    "AppointmentGuid",
    "ExchangeId",
    "ICalUId",
    "Start",
    "End",
    "Subject",
    "Body",
    "Importance",
    "ResourceEmail",
    "ShowAs",
    "Sensitivity",
    "Categories",
    "CreatedByExchange",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
GUID = "3f2b8c1e-5d4a-5b6c-8d7e-9f0a1b2c3d4e"
EMAIL = "jane@contoso.com"


def make_event(**overrides: object) -> Event:
    values: dict[str, object] = {
        "id": "AAMkAGI2TG93AAA=",
        "change_key": "DwAAABYAAAB",
        "ical_uid": "040000008200E00074C5B7101A82E008",
        "subject": "Planning meeting",
        "body": "Agenda: everything",
        "start": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        "end": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        "is_all_day": False,
        "show_as": "busy",
        "sensitivity": "normal",
        "importance": "normal",
        "categories": ("Red category", "Blue category"),
        "is_cancelled": False,
        "type": "singleInstance",
    }
    values.update(overrides)
    return Event(**values)  # type: ignore[arg-type]


def map_event(event: Event, *, private_details: bool = False) -> Appointment:
    return appointment_for(event, GUID, EMAIL, private_details=private_details, zone=UTC)


def test_parameter_names_match_the_reference() -> None:
    assert list(PARAMETER_NAMES) == WIRE_NAMES


@pytest.mark.parametrize(("show_as", "code"), list(DIME_SHOW_AS.items()))
def test_show_as_codes(show_as: str, code: str) -> None:
    assert map_event(make_event(show_as=show_as)).show_as == code


@pytest.mark.parametrize(("sensitivity", "code"), list(DIME_SENSITIVITY.items()))
def test_sensitivity_codes(sensitivity: str, code: str) -> None:
    assert map_event(make_event(sensitivity=sensitivity), private_details=True).sensitivity == code


@pytest.mark.parametrize(("importance", "code"), list(DIME_IMPORTANCE.items()))
def test_importance_codes(importance: str, code: str) -> None:
    assert map_event(make_event(importance=importance)).importance == code


def test_unknown_values_fall_back() -> None:
    appointment = map_event(make_event(show_as="elsewhere", sensitivity="secret", importance="urgent"))
    assert (appointment.show_as, appointment.sensitivity, appointment.importance) == ("6", "1", "0")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 11, 23, 9, 5, 7, tzinfo=UTC), "2026-11-23 09:05:07Z"),
        (datetime(2026, 11, 23, 9, 5, 7, 999999, tzinfo=UTC), "2026-11-23 09:05:07Z"),
        (datetime(2026, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=2))), "2026-01-01 22:30:00Z"),
        (datetime(2026, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))), "2027-01-01 01:00:00Z"),
        (datetime(1999, 3, 4, 5, 6, 7, tzinfo=UTC), "1999-03-04 05:06:07Z"),
    ],
)
def test_format_time(value: datetime, expected: str) -> None:
    assert format_time(value) == expected


def test_full_mapping() -> None:
    appointment = map_event(make_event())
    assert appointment == Appointment(
        guid=GUID,
        exchange_id="AAMkAGI2TG93AAA=",
        ical_uid="040000008200E00074C5B7101A82E008",
        start="2026-11-23 09:00:00Z",
        end="2026-11-23 10:00:00Z",
        subject="Planning meeting",
        body="Agenda: everything",
        importance="0",
        resource_email=EMAIL,
        show_as="3",
        sensitivity="1",
        categories="Red category;Blue category",
    )


def test_all_day_event_times() -> None:
    event = make_event(
        is_all_day=True, start=datetime(2026, 11, 23, tzinfo=UTC), end=datetime(2026, 11, 24, tzinfo=UTC)
    )
    appointment = map_event(event)
    assert (appointment.start, appointment.end) == ("2026-11-23 00:00:00Z", "2026-11-24 00:00:00Z")


def test_missing_ical_uid_is_empty_string() -> None:
    assert map_event(make_event(ical_uid=None)).ical_uid == ""


@pytest.mark.parametrize("sensitivity", ["private", "confidential"])
def test_private_events_are_hidden_by_default(sensitivity: str) -> None:
    appointment = map_event(make_event(sensitivity=sensitivity))
    assert appointment.subject == "Private appointment"
    assert appointment.body == ""
    # Everything else still goes, so the planner sees the person is busy.
    assert appointment.start == "2026-11-23 09:00:00Z"
    assert appointment.show_as == "3"
    assert appointment.sensitivity == DIME_SENSITIVITY[sensitivity]


@pytest.mark.parametrize("sensitivity", ["private", "confidential"])
def test_private_details_allowed(sensitivity: str) -> None:
    appointment = map_event(make_event(sensitivity=sensitivity), private_details=True)
    assert appointment.subject == "Planning meeting"
    assert appointment.body == "Agenda: everything"


@pytest.mark.parametrize("sensitivity", ["normal", "personal"])
@pytest.mark.parametrize("private_details", [True, False])
def test_normal_and_personal_keep_subject_and_body(sensitivity: str, private_details: bool) -> None:
    appointment = map_event(make_event(sensitivity=sensitivity), private_details=private_details)
    assert appointment.subject == "Planning meeting"
    assert appointment.body == "Agenda: everything"


@pytest.mark.parametrize(
    ("categories", "expected"),
    [((), ""), (("One",), "One"), (("A", "B", "C"), "A;B;C"), (("with space", "ünï"), "with space;ünï")],
)
def test_categories_joined_with_semicolons(categories: tuple[str, ...], expected: str) -> None:
    assert map_event(make_event(categories=categories)).categories == expected


def test_parameters_order_and_types() -> None:
    appointment = map_event(make_event())
    values = appointment.parameters()
    assert len(values) == 14
    assert all(isinstance(v, str) for v in values)
    by_name = dict(zip(WIRE_NAMES, values, strict=True))
    assert by_name == {
        "AppointmentId": "0",
        "AppointmentGuid": GUID,
        "ExchangeId": "AAMkAGI2TG93AAA=",
        "ICalUId": "040000008200E00074C5B7101A82E008",
        "Start": "2026-11-23 09:00:00Z",
        "End": "2026-11-23 10:00:00Z",
        "Subject": "Planning meeting",
        "Body": "Agenda: everything",
        "Importance": "0",
        "ResourceEmail": EMAIL,
        "ShowAs": "3",
        "Sensitivity": "1",
        "Categories": "Red category;Blue category",
        "CreatedByExchange": "True",
    }


def test_upsert_call_shape() -> None:
    appointment = map_event(make_event())
    call = upsert_call(appointment)
    assert set(call) == {"StoredProcedureName", "ParameterNames", "ParameterValues"}
    assert call["StoredProcedureName"] == "mboc_upsertExchangeAppointment"
    assert call["ParameterNames"] == WIRE_NAMES
    assert call["ParameterValues"] == appointment.parameters()


def test_upsert_call_names_are_a_fresh_list() -> None:
    call = upsert_call(map_event(make_event()))
    call["ParameterNames"].append("Mutated")  # type: ignore[union-attr]
    assert upsert_call(map_event(make_event()))["ParameterNames"] == WIRE_NAMES


def test_upsert_sends_the_known_appointment_id() -> None:
    call = upsert_call(map_event(make_event()), "4711")
    assert dict(zip(WIRE_NAMES, call["ParameterValues"], strict=True))["AppointmentId"] == "4711"  # type: ignore[arg-type]


def test_delete_call_repeats_the_last_typed_values() -> None:
    appointment = map_event(make_event(show_as="oof", sensitivity="personal", importance="low"))
    call = delete_call(GUID, EMAIL, appointment.kept_values(), "4711")
    assert set(call) == {"StoredProcedureName", "ParameterNames", "ParameterValues"}
    assert call["StoredProcedureName"] == "mboc_deleteExchangeAppointment"
    assert call["ParameterNames"] == WIRE_NAMES
    values = call["ParameterValues"]
    assert isinstance(values, list) and all(isinstance(v, str) for v in values)
    by_name = dict(zip(WIRE_NAMES, values, strict=True))
    assert by_name == {
        "AppointmentId": "4711",
        "AppointmentGuid": GUID,
        "ExchangeId": "AAMkAGI2TG93AAA=",
        "ICalUId": "040000008200E00074C5B7101A82E008",
        "Start": "2026-11-23 09:00:00Z",
        "End": "2026-11-23 10:00:00Z",
        "Subject": "Planning meeting",
        "Body": "",
        "Importance": "2",
        "ResourceEmail": EMAIL,
        "ShowAs": "4",
        "Sensitivity": "2",
        "Categories": "Red category;Blue category",
        "CreatedByExchange": "True",
    }
    # never "" for a date, an enumeration or a boolean
    for name in ("Start", "End", "Importance", "ShowAs", "Sensitivity", "CreatedByExchange"):
        assert by_name[name] != ""


def test_delete_without_kept_values_is_refused_not_sent_empty() -> None:
    with pytest.raises(MissingDeleteValues):
        delete_call(GUID, EMAIL, None)
    kept = map_event(make_event()).kept_values()
    del kept["ShowAs"]
    with pytest.raises(MissingDeleteValues):
        delete_call(GUID, EMAIL, kept)


def test_unknown_appointment_id_is_zero_on_delete_too() -> None:
    call = delete_call(GUID, EMAIL, map_event(make_event()).kept_values())
    assert call["ParameterValues"][0] == "0"  # type: ignore[index]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"Success": True, "Appointments": [{"Id": 123, "Guid": GUID}]}, "123"),
        ({"success": True, "appointments": [{"id": "77", "guid": GUID.upper()}]}, "77"),
        ({"Appointments": [{"Id": 5, "Guid": "other"}]}, None),
        ({"Appointments": [{"Id": 0, "Guid": GUID}]}, None),
        ({}, None),
    ],
)
def test_appointment_id_of_the_answer(content: dict, expected: str | None) -> None:
    assert appointment_id_of(content, GUID) == expected


def test_content_hash_equal_for_equal_appointments() -> None:
    first = map_event(make_event())
    second = map_event(make_event())
    assert first is not second
    assert first.content_hash() == second.content_hash()
    assert len(first.content_hash()) == 64
    int(first.content_hash(), 16)


def test_content_hash_is_the_stored_format() -> None:
    """Links store this hash: a change of its text would make every stored link look changed."""
    appointment = Appointment(*(f"{name}-é" for name in FIELDS))
    text = "{" + ", ".join(f'"{name}": "{name}-é"' for name in sorted(FIELDS)) + "}"
    assert appointment.content_hash() == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_content_hash_ignores_what_is_not_sent() -> None:
    # change_key and is_cancelled are not on the wire: they must not change the hash.
    a = map_event(make_event(change_key="one"))
    b = map_event(make_event(change_key="two"))
    assert a.content_hash() == b.content_hash()


FIELDS = [f.name for f in dataclasses.fields(Appointment)]


def test_every_field_is_sent_and_everything_sent_is_a_field() -> None:
    """The content hash covers the fields; the wire carries the parameters: they must be the same
    values, so a field added but not sent (or sent but not hashed) fails here. AppointmentId is
    identity and CreatedByExchange a constant, the two slots that are no field."""
    appointment = Appointment(**{name: f"<{name}>" for name in FIELDS})
    sent = dict(zip(PARAMETER_NAMES, appointment.parameters("42"), strict=True))
    assert (sent.pop("AppointmentId"), sent.pop("CreatedByExchange")) == ("42", "True")
    assert sorted(sent.values()) == sorted(f"<{name}>" for name in FIELDS)


@pytest.mark.parametrize("field", FIELDS)
def test_content_hash_changes_when_any_field_changes(field: str) -> None:
    base = map_event(make_event())
    changed = dataclasses.replace(base, **{field: getattr(base, field) + "x"})
    assert changed.content_hash() != base.content_hash()


def test_content_hash_distinguishes_moved_values() -> None:
    base = map_event(make_event())
    swapped = dataclasses.replace(base, subject=base.body, body=base.subject)
    assert swapped.content_hash() != base.content_hash()
    shifted = dataclasses.replace(base, subject=base.subject + base.body, body="")
    assert shifted.content_hash() != base.content_hash()


def test_content_hash_is_stable_across_processes() -> None:
    """Different PYTHONHASHSEED (so different set/dict iteration) must give the same hash."""
    script = (
        "import dataclasses, sys;"
        "from shared.core.outlook_to_dime.appointments import Appointment;"
        "a = Appointment(*[f'{n}-ü' for n in (f.name for f in dataclasses.fields(Appointment))]);"
        "sys.stdout.write(a.content_hash())"
    )
    hashes = {
        subprocess.run(
            [sys.executable, "-c", script],
            check=True,
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
        ).stdout
        for seed in ("0", "12345")
    }
    assert len(hashes) == 1
    local = Appointment(*[f"{name}-ü" for name in FIELDS])
    assert hashes == {local.content_hash()}


def test_content_hash_is_sha256_of_sorted_json() -> None:
    # Pinned: changing the canonical form would make every stored link look changed at once.
    appointment = Appointment(*[f"v{i}" for i in range(12)])
    pairs = sorted(zip(FIELDS, [f"v{i}" for i in range(12)], strict=True))
    canonical = "{" + ", ".join(f'"{k}": "{v}"' for k, v in pairs) + "}"
    assert appointment.content_hash() == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
