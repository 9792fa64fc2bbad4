"""Services: adapters handed in by name only, and every per-process cache a named attribute that
starts empty with each Services (no cache hidden in the instance's __dict__)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.adapters.storage.rules_rows import StoredRules
from shared.services import ProcessCaches, Services
from shared.settings import load_settings
from shared.usecases.dime_to_outlook import place_appointment, rules_in_force
from tests.unit.test_settings import minimal_env


def services() -> Services:
    return Services(load_settings(minimal_env()), store=object())


def test_a_misspelt_adapter_is_refused_rather_than_ignored():
    with pytest.raises(TypeError, match="storre"):
        Services(load_settings(minimal_env()), storre=object())


def test_a_handed_in_adapter_replaces_the_built_one():
    store = object()
    assert Services(load_settings(minimal_env()), store=store).store is store


def test_the_rules_cache_is_the_named_attribute_and_a_save_drops_it(monkeypatch):
    reads: list[Any] = []

    def read_rules_row(store: Any) -> StoredRules:
        reads.append(store)
        return StoredRules([], None)

    monkeypatch.setattr(rules_in_force, "read_rules_row", read_rules_row)
    first, other = services(), services()
    assert first.caches == ProcessCaches()

    asyncio.run(rules_in_force.rules_in_force(first))
    asyncio.run(rules_in_force.rules_in_force(first))
    assert len(reads) == 1 and first.caches.rules is not None  # the second came from the cache
    assert other.caches.rules is None  # one cache per Services

    rules_in_force.forget_rules(first)
    assert first.caches.rules is None
    asyncio.run(rules_in_force.rules_in_force(first))
    assert len(reads) == 2


def test_the_dime_directory_is_the_named_attribute():
    one = services()
    directory = place_appointment.directory_of(one)
    assert one.caches.dime_directory is directory
    assert place_appointment.directory_of(one) is directory
    assert place_appointment.directory_of(services()) is not directory
