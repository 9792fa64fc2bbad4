"""Deterministic appointment GUIDs and table-safe keys."""

from __future__ import annotations

import base64
import uuid

import pytest

from shared.core.ids import APPOINTMENT_NAMESPACE, appointment_guid, decode_key, encode_key

TENANT = "7A1F3C5E-0000-4000-8000-00000000AAAA"
MAILBOX = "0B9D2E4F-1111-4222-8333-444455556666"
EVENT = "AAMkAGI2TG93AAA="


def test_guid_is_deterministic() -> None:
    assert appointment_guid(TENANT, MAILBOX, EVENT) == appointment_guid(TENANT, MAILBOX, EVENT)


def test_guid_is_uuid5_of_fixed_namespace() -> None:
    value = appointment_guid(TENANT, MAILBOX, EVENT)
    parsed = uuid.UUID(value)
    assert str(parsed) == value  # canonical lowercase hyphenated form
    assert parsed.version == 5
    assert parsed.variant == uuid.RFC_4122
    # The namespace must never change: pin it, and the derivation, independently.
    assert uuid.UUID("6f1c2a0e-8e43-4d39-9d7e-5b0f3c2a9e71") == APPOINTMENT_NAMESPACE
    expected = uuid.uuid5(APPOINTMENT_NAMESPACE, f"{TENANT.lower()}/{MAILBOX.lower()}/{EVENT}")
    assert value == str(expected)


@pytest.mark.parametrize(
    "other",
    [
        ("other-tenant", MAILBOX, EVENT),
        (TENANT, "other-mailbox", EVENT),
        (TENANT, MAILBOX, "AAMkAGI2TG93AAB="),
        (TENANT, MAILBOX, EVENT.lower()),  # Graph ids are case-sensitive
    ],
)
def test_guid_differs_per_tenant_mailbox_event(other: tuple[str, str, str]) -> None:
    assert appointment_guid(*other) != appointment_guid(TENANT, MAILBOX, EVENT)


def test_guid_case_insensitive_on_tenant_and_mailbox() -> None:
    reference = appointment_guid(TENANT, MAILBOX, EVENT)
    assert appointment_guid(TENANT.lower(), MAILBOX.lower(), EVENT) == reference
    assert appointment_guid(TENANT.upper(), MAILBOX.swapcase(), EVENT) == reference


HOSTILE_IDS = [
    "AAMkAGI2/TG93+AAA=",
    "a/b/c",
    "plus+plus",
    "pad==",
    "hash#tag",
    "what?x=1",
    "back\\slash",
    "ünïcødé-日本語-🙂",
    "\t tab and newline\n",
    "",
    "x" * 1000,
    "??##//\\\\",
]


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_encode_key_round_trips(value: str) -> None:
    assert decode_key(encode_key(value)) == value


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_encoded_key_is_table_safe(value: str) -> None:
    key = encode_key(value)
    for forbidden in ("/", "\\", "#", "?"):
        assert forbidden not in key
    assert all(0x20 < ord(c) < 0x7F for c in key)  # no control characters, no spaces, ASCII only
    assert "=" not in key


def test_encode_key_matches_urlsafe_base64_without_padding() -> None:
    value = "AAMk/+?#"
    expected = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")
    assert encode_key(value) == expected


def test_encode_key_is_injective_on_close_values() -> None:
    keys = {encode_key(v) for v in ["a", "a=", "a==", "A", "a/", "a_", "a-"]}
    assert len(keys) == 7
