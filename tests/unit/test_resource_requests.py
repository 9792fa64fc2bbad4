"""Parsing and validating the resources admin API's input, and rendering a resource."""

from __future__ import annotations

import pytest

from shared.core.consent import Consent, ConsentError
from shared.core.resource_requests import (
    InputError,
    ResourceInput,
    apply_input,
    parse_mailbox,
    parse_resource_body,
    resource_json,
)
from shared.core.resources import Resource

OID = "4B3F6A1E-0000-4000-8000-000000000001"
BASE = Resource(OID.lower(), "jane@contoso.onmicrosoft.com", "jane@contoso.com", Consent.parse(True, "busy", "normal"))


@pytest.mark.parametrize("raw", [OID, "jane@contoso.com", " Jane@Contoso.com "])
def test_parse_mailbox_accepts_object_ids_and_upns(raw):
    assert parse_mailbox(raw) == raw.strip().lower()


@pytest.mark.parametrize("raw", [None, "", "jane", "a b@c.d", "x" * 400 + "@contoso.com", "../etc"])
def test_parse_mailbox_refuses_anything_else(raw):
    with pytest.raises(InputError, match="user principal name"):
        parse_mailbox(raw)


def test_empty_body_changes_nothing():
    assert parse_resource_body(b"") == ResourceInput()
    assert parse_resource_body(b"  \n") == ResourceInput()
    assert apply_input(BASE, ResourceInput()) == BASE


def test_full_body():
    change = parse_resource_body(
        b'{"email": " planner@contoso.com ", "enabled": false, "showAs": ["busy", "oof"], "sensitivities": "normal"}'
    )
    assert change == ResourceInput("planner@contoso.com", False, ("busy", "oof"), "normal")
    updated = apply_input(BASE, change)
    assert updated.email == "planner@contoso.com" and not updated.consent.enabled
    assert updated.consent.show_as == {"busy", "oof"} and updated.consent.sensitivities == {"normal"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"null", "JSON object"),
        (b'"text"', "JSON object"),
        (b'{"enabled": 1}', "enabled must be true or false"),
        (b'{"email": 5}', "email must be"),
        (b'{"email": "a@b"}', "email must be"),
        (b'{"showAs": [1]}', "showAs must be a list of strings"),
        (b'{"sensitivities": {"a": 1}}', "sensitivities must be a list"),
        (b'{"id": "x"}', "unknown field 'id'; allowed: email, enabled, showAs, sensitivities, locked"),
        (b" " * 20000, "too large"),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(body, reason):
    with pytest.raises(InputError, match=reason):
        parse_resource_body(body)


def test_unknown_consent_values_list_the_allowed_ones():
    with pytest.raises(ConsentError, match="allowed: free, tentative, busy, oof, workingElsewhere, unknown"):
        apply_input(BASE, parse_resource_body(b'{"showAs": ["away"]}'))


def test_resource_json():
    assert resource_json(BASE) == {
        "id": OID.lower(),
        "upn": "jane@contoso.onmicrosoft.com",
        "displayName": None,
        "email": "jane@contoso.com",
        "enabled": True,
        "showAs": ["busy"],
        "sensitivities": ["normal"],
        "subscription": None,
        "createdAt": None,
        "updatedAt": None,
        "locked": [],
    }
    with_sub = Resource(BASE.object_id, BASE.upn, BASE.email, BASE.consent, "s1", "2026-03-01T12:00:00Z")
    assert resource_json(with_sub)["subscription"] == {"id": "s1", "expiresAt": "2026-03-01T12:00:00Z"}


def test_an_administrators_consent_fields_are_locked_and_locked_sets_the_list_exactly():
    from shared.core.resource_requests import admin_locks

    assert admin_locks(BASE, parse_resource_body(b'{"email": "j@contoso.com"}')) == frozenset()
    assert admin_locks(BASE, parse_resource_body(b'{"showAs": ["busy"], "enabled": true}')) == {"showAs", "enabled"}
    locked = Resource(BASE.object_id, BASE.upn, BASE.email, BASE.consent, locked=frozenset({"enabled"}))
    assert admin_locks(locked, parse_resource_body(b'{"sensitivities": []}')) == {"enabled", "sensitivities"}
    assert admin_locks(locked, parse_resource_body(b'{"showAs": ["busy"], "locked": []}')) == frozenset()
    with pytest.raises(InputError, match="locked must be a list of consent fields"):
        parse_resource_body(b'{"locked": ["email"]}')
    assert resource_json(locked)["locked"] == ["enabled"]


def test_a_person_may_set_only_their_consent_and_not_the_locked_fields():
    from shared.core.resource_requests import locked_in, parse_own_body

    locked = Resource(BASE.object_id, BASE.upn, BASE.email, BASE.consent, locked=frozenset({"sensitivities"}))
    assert locked_in(locked, parse_own_body(b'{"showAs": ["busy"]}')) == []
    assert locked_in(locked, parse_own_body(b'{"sensitivities": ["normal"], "enabled": true}')) == ["sensitivities"]
    for body in (b'{"email": "x@contoso.com"}', b'{"locked": []}', b'{"id": "someone-else"}'):
        with pytest.raises(InputError, match="unknown field"):
            parse_own_body(body)
