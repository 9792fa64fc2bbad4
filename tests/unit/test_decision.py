"""The sync decision table: what to do with one Outlook event, and why."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.consent import Consent
from shared.core.decision import Action, Decision, decide, refusal
from shared.core.events import Event
from shared.core.links import Link

WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 5, 1, tzinfo=UTC))
CONSENT = Consent(True, frozenset({"tentative", "busy", "oof", "workingElsewhere"}), frozenset({"normal", "personal"}))
HASH = "a" * 64
OTHER_HASH = "b" * 64


def make_event(**overrides: object) -> Event:
    values: dict[str, object] = {
        "id": "event-1",
        "change_key": "ck-2",
        "ical_uid": None,
        "subject": "s",
        "body": "b",
        "start": datetime(2026, 11, 23, 9, tzinfo=UTC),
        "end": datetime(2026, 11, 23, 10, tzinfo=UTC),
        "is_all_day": False,
        "show_as": "busy",
        "sensitivity": "normal",
        "importance": "normal",
        "categories": (),
        "is_cancelled": False,
        "type": "singleInstance",
    }
    values.update(overrides)
    return Event(**values)  # type: ignore[arg-type]


def make_link(change_key: str | None = "ck-1", content_hash: str | None = HASH) -> Link:
    return Link(
        mailbox_id="m",
        event_id="event-1",
        appointment_guid="g",
        origin="outlook",
        change_key=change_key,
        content_hash=content_hash,
        resource_email="jane@contoso.com",
        synced_at="2026-11-20T00:00:00Z",
    )


def test_deleted_event_with_link_is_deleted() -> None:
    assert decide(None, make_link(), CONSENT, WINDOW, None) == Decision(Action.DELETE, "event-deleted")


def test_deleted_event_never_synced_is_skipped() -> None:
    assert decide(None, None, CONSENT, WINDOW, None) == Decision(Action.SKIP, "deleted-never-synced")


def test_deleted_event_ignores_consent() -> None:
    disabled = dataclasses.replace(CONSENT, enabled=False)
    assert decide(None, make_link(), disabled, WINDOW, None).action is Action.DELETE


W_START, W_END = WINDOW
HOUR = timedelta(hours=1)

REFUSED = [
    pytest.param(make_event(is_cancelled=True), CONSENT, "cancelled", id="cancelled"),
    pytest.param(make_event(type="seriesMaster"), CONSENT, "series-master", id="series-master"),
    pytest.param(make_event(show_as="free"), CONSENT, "show-as-not-consented", id="show-as-free"),
    pytest.param(make_event(show_as="unknown"), CONSENT, "show-as-not-consented", id="show-as-unknown"),
    pytest.param(make_event(sensitivity="private"), CONSENT, "sensitivity-not-consented", id="private"),
    pytest.param(make_event(sensitivity="confidential"), CONSENT, "sensitivity-not-consented", id="confidential"),
    pytest.param(make_event(), dataclasses.replace(CONSENT, enabled=False), "mailbox-disabled", id="disabled"),
    pytest.param(
        make_event(start=W_START - 3 * HOUR, end=W_START - 2 * HOUR), CONSENT, "outside-window", id="before-window"
    ),
    pytest.param(make_event(start=W_START - HOUR, end=W_START), CONSENT, "outside-window", id="ends-at-window-start"),
    pytest.param(make_event(start=W_END, end=W_END + HOUR), CONSENT, "outside-window", id="starts-at-window-end"),
    pytest.param(
        make_event(start=W_END + 2 * HOUR, end=W_END + 3 * HOUR), CONSENT, "outside-window", id="after-window"
    ),
    pytest.param(
        make_event(start=W_START - HOUR, end=W_START - HOUR), CONSENT, "outside-window", id="zero-length-before"
    ),
]


@pytest.mark.parametrize(("event", "consent", "reason"), REFUSED)
def test_refused_event_with_link_is_deleted(event: Event, consent: Consent, reason: str) -> None:
    assert decide(event, make_link(), consent, WINDOW, HASH) == Decision(Action.DELETE, reason)


@pytest.mark.parametrize(("event", "consent", "reason"), REFUSED)
def test_refused_event_without_link_is_skipped(event: Event, consent: Consent, reason: str) -> None:
    assert decide(event, None, consent, WINDOW, HASH) == Decision(Action.SKIP, reason)


@pytest.mark.parametrize(("event", "consent", "reason"), REFUSED)
def test_refusal_function_agrees(event: Event, consent: Consent, reason: str) -> None:
    assert refusal(event, consent, WINDOW) == reason


def test_refusal_precedence() -> None:
    # Cancelled first, then series master, then consent, then the window.
    everything_wrong = make_event(
        is_cancelled=True, type="seriesMaster", show_as="free", start=W_END + HOUR, end=W_END + 2 * HOUR
    )
    assert refusal(everything_wrong, CONSENT, WINDOW) == "cancelled"
    assert refusal(dataclasses.replace(everything_wrong, is_cancelled=False), CONSENT, WINDOW) == "series-master"
    no_master = dataclasses.replace(everything_wrong, is_cancelled=False, type="occurrence")
    assert refusal(no_master, CONSENT, WINDOW) == "show-as-not-consented"
    assert refusal(dataclasses.replace(no_master, show_as="busy"), CONSENT, WINDOW) == "outside-window"


INSIDE = [
    pytest.param(make_event(), id="middle"),
    pytest.param(make_event(start=W_START - HOUR, end=W_START + HOUR), id="straddles-start"),
    pytest.param(make_event(start=W_END - HOUR, end=W_END + HOUR), id="straddles-end"),
    pytest.param(make_event(start=W_START - HOUR, end=W_END + HOUR), id="covers-window"),
    pytest.param(make_event(start=W_START, end=W_START + HOUR), id="starts-at-window-start"),
    pytest.param(make_event(start=W_END - HOUR, end=W_END), id="ends-at-window-end"),
    pytest.param(make_event(type="occurrence"), id="occurrence"),
    pytest.param(make_event(type="exception"), id="exception"),
    pytest.param(make_event(sensitivity="personal", show_as="workingElsewhere"), id="personal"),
]


@pytest.mark.parametrize("event", INSIDE)
def test_eligible_new_event_is_upserted(event: Event) -> None:
    assert refusal(event, CONSENT, WINDOW) is None
    assert decide(event, None, CONSENT, WINDOW, HASH) == Decision(Action.UPSERT, "new")


def test_new_event_upserted_even_without_a_hash() -> None:
    assert decide(make_event(), None, CONSENT, WINDOW, None) == Decision(Action.UPSERT, "new")


def test_same_change_key_is_unchanged() -> None:
    link = make_link(change_key="ck-2", content_hash=OTHER_HASH)
    assert decide(make_event(change_key="ck-2"), link, CONSENT, WINDOW, HASH) == Decision(Action.SKIP, "unchanged")


def test_new_change_key_same_content_is_relinked() -> None:
    link = make_link(change_key="ck-1", content_hash=HASH)
    assert decide(make_event(change_key="ck-2"), link, CONSENT, WINDOW, HASH) == Decision(
        Action.RELINK, "content-unchanged"
    )


def test_new_change_key_new_content_is_upserted() -> None:
    link = make_link(change_key="ck-1", content_hash=OTHER_HASH)
    assert decide(make_event(change_key="ck-2"), link, CONSENT, WINDOW, HASH) == Decision(Action.UPSERT, "changed")


@pytest.mark.parametrize(
    ("event_key", "link_key", "link_hash", "current_hash", "expected"),
    [
        # change_key None (on either side) never counts as "unchanged": fall through to the hash.
        (None, None, HASH, HASH, Decision(Action.RELINK, "content-unchanged")),
        (None, None, HASH, OTHER_HASH, Decision(Action.UPSERT, "changed")),
        (None, "ck-1", HASH, HASH, Decision(Action.RELINK, "content-unchanged")),
        ("ck-2", None, HASH, HASH, Decision(Action.RELINK, "content-unchanged")),
        ("ck-2", None, HASH, OTHER_HASH, Decision(Action.UPSERT, "changed")),
        # A missing hash never counts as "content unchanged".
        ("ck-2", "ck-1", None, None, Decision(Action.UPSERT, "changed")),
        ("ck-2", "ck-1", HASH, None, Decision(Action.UPSERT, "changed")),
        ("ck-2", "ck-1", None, HASH, Decision(Action.UPSERT, "changed")),
        (None, None, None, None, Decision(Action.UPSERT, "changed")),
        # Same change_key wins even when the hashes are unknown.
        ("ck-2", "ck-2", None, None, Decision(Action.SKIP, "unchanged")),
    ],
)
def test_change_key_and_hash_table(
    event_key: str | None, link_key: str | None, link_hash: str | None, current_hash: str | None, expected: Decision
) -> None:
    event = make_event(change_key=event_key)
    link = make_link(change_key=link_key, content_hash=link_hash)
    assert decide(event, link, CONSENT, WINDOW, current_hash) == expected


def test_refusal_wins_over_unchanged() -> None:
    # Consent withdrawn but the event itself did not change: still remove it from the board.
    disabled = dataclasses.replace(CONSENT, enabled=False)
    link = make_link(change_key="ck-2", content_hash=HASH)
    assert decide(make_event(change_key="ck-2"), link, disabled, WINDOW, HASH) == Decision(
        Action.DELETE, "mailbox-disabled"
    )


def test_action_values_are_stable_strings() -> None:
    assert [a.value for a in Action] == ["upsert", "delete", "relink", "skip"]
    assert Action.UPSERT == "upsert"
