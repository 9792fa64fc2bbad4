"""Delta rounds as pure values: windows, when to start afresh, reading pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.outlook_to_dime.delta import DeltaState, Window, digest, lease_free, read_page

NOW = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)


def test_the_window_is_whole_days_and_covers_the_decision_window():
    window = Window.around(NOW, 30, 180)
    assert window.start == datetime(2026, 10, 23, tzinfo=UTC)
    assert window.end == datetime(2027, 5, 22, tzinfo=UTC)
    for hours in (0, 8, 23):  # all day long, the decision's window stays inside
        now = NOW.replace(hour=0, minute=0) + timedelta(hours=hours, minutes=59)
        assert window.start <= now - timedelta(days=30) and now + timedelta(days=180) <= window.end
    assert window.iso() == ("2026-10-23T00:00:00Z", "2027-05-22T00:00:00Z")


def test_a_first_round_is_a_full_listing():
    window = Window.around(NOW, 30, 180)
    assert DeltaState().fresh_round_due(NOW, window) == "first-round"
    state = DeltaState().start_fresh(NOW, window)
    assert state.fresh and state.delta_link is None and state.window == window


def test_a_finished_round_continues_the_same_day_and_rolls_the_next():
    window = Window.around(NOW, 30, 180)
    state = DeltaState().start_fresh(NOW, window).finished("https://graph/delta?$deltatoken=a")
    assert not state.fresh
    assert state.fresh_round_due(NOW + timedelta(hours=8), window) is None
    tomorrow = NOW + timedelta(hours=9)
    assert state.fresh_round_due(tomorrow, Window.around(tomorrow, 30, 180)) == "window-moved"
    assert state.fresh_round_due(NOW, Window.around(NOW, 30, 90)) == "window-moved"


def test_an_unfinished_round_is_finished_first():
    window = Window.around(NOW, 30, 180)
    state = DeltaState().start_fresh(NOW, window).paused_at("https://graph/delta?$skiptoken=b")
    later = NOW + timedelta(days=3)
    assert state.fresh_round_due(later, Window.around(later, 30, 180)) is None
    assert state.fresh and state.next_link


def test_read_page_splits_events_and_removals_and_keeps_the_last_per_id():
    page = read_page(
        {
            "value": [
                {"id": "a", "subject": "first"},
                {"id": "b", "@removed": {"reason": "deleted"}},
                {"id": "a", "subject": "second"},
                {"id": "c", "subject": "gone later"},
                {"id": "c", "@removed": {"reason": "deleted"}},
                {"no": "id"},
            ],
            "@odata.nextLink": "next",
        }
    )
    assert [e["subject"] for e in page.events] == ["second"]
    assert page.removed == ["b", "c"]
    assert page.next_link == "next" and page.delta_link is None


def test_digest_is_short_and_stable():
    assert digest("AAkALg-x_y=") == digest("AAkALg-x_y=")
    assert digest("a") != digest("b") and len(digest("a")) == 16


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"id": "a", "changeKey": "ck1", "@odata.etag": 'W/"other"'}, "ck1"),
        ({"id": "a", "@odata.etag": 'W/"DwAAABYAAAB"'}, "DwAAABYAAAB"),
        ({"id": "a", "@odata.etag": '"strong"'}, "strong"),
        ({"id": "a", "@odata.etag": "garbage"}, None),
        ({"id": "a"}, None),
    ],
)
def test_change_key_of_a_partial_delta_item(item, expected):
    from shared.core.outlook_to_dime.delta import change_key_of

    assert change_key_of(item) == expected


def test_a_lease_is_free_when_released_ours_or_expired_and_held_otherwise():
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    later, earlier = now + timedelta(minutes=1), now - timedelta(minutes=1)
    assert lease_free("", later, "me", now)  # given back
    assert lease_free("me", later, "me", now)
    assert lease_free("other", earlier, "me", now)  # a crashed holder's lease expired
    assert lease_free("other", now, "me", now)
    assert lease_free("other", None, "me", now)  # no readable expiry: never held forever
    assert not lease_free("other", later, "me", now)
