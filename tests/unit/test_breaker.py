"""The circuit breaker: deletes inferred from absence are allowed only in small numbers."""

from __future__ import annotations

import pytest

from shared.core.breaker import FLOOR, check_deletes


@pytest.mark.parametrize(
    ("deletes", "links", "allowed"),
    [
        (0, 0, True),
        (0, 100, True),
        (1, 1, True),  # the floor: a tiny mailbox can delete its only appointment
        (1, 2, True),
        (FLOOR, FLOOR, True),
        (FLOOR + 1, FLOOR + 1, False),
        (20, 100, True),  # exactly the share
        (21, 100, False),
        (200, 1000, True),
        (201, 1000, False),
        (1000, 1000, False),
    ],
)
def test_share_with_a_floor(deletes, links, allowed):
    verdict = check_deletes(deletes, links, share=0.2)
    assert verdict.allowed is allowed
    assert verdict.reason == ("ok" if allowed else "mass-delete")


def test_the_share_is_configurable():
    assert check_deletes(40, 100, share=0.5).allowed
    assert not check_deletes(60, 100, share=0.5).allowed
    assert not check_deletes(6, 100, share=0.0).allowed  # 0 leaves only the floor
    assert check_deletes(100, 100, share=1.0).allowed


def test_an_empty_listing_trips_whenever_links_exist():
    verdict = check_deletes(0, 3, empty_listing=True)
    assert not verdict.allowed and verdict.reason == "empty-listing"
    assert "3" in verdict.message
    assert not check_deletes(1, 1, empty_listing=True).allowed  # even below the floor
    assert check_deletes(0, 0, empty_listing=True).allowed  # nothing linked: nothing to protect


def test_the_message_names_the_counts():
    verdict = check_deletes(300, 1000, share=0.2)
    assert "300 of 1000" in verdict.message and "nothing was deleted" in verdict.message
