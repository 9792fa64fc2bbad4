"""The publications routes' own key: presented, compared, put into hook URLs, fingerprinted."""

from __future__ import annotations

import hmac

import pytest

from shared.core.dime_to_outlook import publications_key
from shared.core.dime_to_outlook.publications_key import (
    hook_fingerprint,
    key_is_valid,
    keyed_url,
    presented_key,
    shown_url,
)

KEY = "k" * 40
PREVIOUS = "p" * 40


def test_the_key_comes_from_code_or_the_functions_key_header():
    assert presented_key({"code": KEY}, {}) == KEY
    assert presented_key({}, {"X-Functions-Key": KEY}) == KEY
    assert presented_key({"code": KEY}, {"x-functions-key": "other"}) == KEY  # ?code= first, as the host
    assert presented_key({"code": ""}, {}) is None
    assert presented_key({}, {"Authorization": "Basic abc"}) is None


def test_only_our_keys_are_valid():
    assert key_is_valid(KEY, (KEY,))
    assert key_is_valid(PREVIOUS, (KEY, PREVIOUS))
    assert not key_is_valid(PREVIOUS, (KEY,))
    assert not key_is_valid(KEY[:-1], (KEY,))
    assert not key_is_valid(KEY + "k", (KEY,))
    assert not key_is_valid(None, (KEY,))
    assert not key_is_valid("", (KEY,))
    assert not key_is_valid(KEY, ())  # no key configured: nothing opens
    assert not key_is_valid("k" * 100_000, (KEY,))


@pytest.mark.parametrize("sent", ["k", KEY[:-1], KEY, "x" * 500])
def test_every_key_is_compared_at_one_length(sent, monkeypatch):
    """compare_digest returns at once when lengths differ (the key's length would leak), and an
    early exit on the first key would tell which one matched: both are hashed, all are compared."""
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(publications_key.hmac, "compare_digest", spy)
    key_is_valid(sent, (KEY, PREVIOUS))
    assert compared == [(32, 32), (32, 32)]


def test_hook_urls_carry_our_key_and_never_the_host_key():
    url = keyed_url("https://app.example.com/api/dime/publications?code=HOSTKEY&x=1", "deleted", KEY)
    assert url == f"https://app.example.com/api/dime/publications/deleted?x=1&code={KEY}"
    assert "HOSTKEY" not in url
    assert keyed_url("https://app.example.com/api/dime/publications/", None, KEY).endswith(f"/publications?code={KEY}")
    assert shown_url(url) == "https://app.example.com/api/dime/publications/deleted"


def test_the_fingerprint_follows_key_and_url_and_hides_the_key():
    url = keyed_url("https://app.example.com/api/dime/publications", "created", KEY)
    same = hook_fingerprint(KEY, url)
    assert same == hook_fingerprint(KEY, url) and len(same) == 16 and KEY not in same
    rotated = keyed_url("https://app.example.com/api/dime/publications", "created", PREVIOUS)
    assert hook_fingerprint(PREVIOUS, rotated) != same
    moved = keyed_url("https://other.example.com/api/dime/publications", "created", KEY)
    assert hook_fingerprint(KEY, moved) != same


def test_a_flood_of_refusals_is_one_log_line_per_interval(caplog):
    """Anyone can reach an anonymous route: 10,000 keyless POSTs must not be 10,000 log lines."""
    from shared.usecases.dime_to_outlook.inbound import RefusalLog

    now = [0.0]
    refusals = RefusalLog(interval=60.0, clock=lambda: now[0])
    with caplog.at_level("WARNING"):
        for number in range(10_000):
            now[0] = number * 0.001  # ten seconds of refusals
            refusals.record("no key" if number % 2 else "another key")
        assert len(caplog.records) == 1 and "refused 1 publication(s)" in caplog.records[0].getMessage()
        now[0] = 61.0
        refusals.record("no key")
        assert len(caplog.records) == 2
        assert "refused 10000 publication(s)" in caplog.records[1].getMessage()
        assert "another key 4999, no key 5001" in caplog.records[1].getMessage()
