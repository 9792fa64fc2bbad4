"""Dime.Scheduler's Basic credentials: compared in constant time, whatever the caller sends."""

from __future__ import annotations

import base64
import hmac

import pytest

from shared.usecases.dime_to_outlook import inbound
from shared.usecases.dime_to_outlook.inbound import authorised

CREDENTIALS = ("dime", "p" * 20)


def basic(text: bytes) -> str:
    return "Basic " + base64.b64encode(text).decode()


@pytest.mark.parametrize("sent", [b"d", b"dime:p", b"dime:" + b"p" * 20, b"dime:" + b"p" * 200, b"x" * 1000])
def test_the_comparison_never_depends_on_the_length_of_what_was_sent(sent, monkeypatch):
    """compare_digest exits early when the lengths differ, which tells a caller the secret's length:
    every comparison is between values of one fixed length."""
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(inbound.hmac, "compare_digest", spy)
    authorised(basic(sent), CREDENTIALS)
    assert compared, "the credentials were not compared at all"
    assert all(a == b for a, b in compared), compared
    assert len({pair for pair in compared}) == 1


def test_right_and_wrong_credentials():
    assert authorised(basic(b"dime:" + b"p" * 20), CREDENTIALS)
    assert not authorised(basic(b"dime:" + b"p" * 19), CREDENTIALS)
    assert not authorised(basic(b"dime:" + b"p" * 21), CREDENTIALS)
    assert not authorised(basic(b"Dime:" + b"p" * 20), CREDENTIALS)
    assert not authorised("Bearer abc", CREDENTIALS)
    assert not authorised("Basic %%%", CREDENTIALS)
    assert not authorised(None, CREDENTIALS)
    assert authorised(None, None)
