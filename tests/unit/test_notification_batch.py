"""Packing one POST's changes into queue messages, and folding duplicates into one change."""

from __future__ import annotations

import json

from shared.core.outlook_to_dime.packing import PACK_LIMIT, fold, is_packed, pack


def change(event: str, key: str | None = "k1", kind: str = "updated", sub: str = "s") -> dict:
    return {"mailboxId": "m", "eventId": event, "changeType": kind, "changeKey": key, "subscriptionId": sub}


def test_a_lone_change_stays_plain_and_many_are_packed_within_the_limit():
    assert pack([change("a")]) == [change("a")]
    messages = pack([change(str(i)) for i in range(PACK_LIMIT + 1)])
    assert [len(m["changes"]) for m in messages] == [PACK_LIMIT, 1]
    assert all(is_packed(m) for m in messages) and not is_packed(change("a"))
    assert len(json.dumps(messages[0]).encode()) * 4 / 3 < 64 * 1024  # base64 in a 64 KiB message


def test_duplicates_fold_into_one_change_per_event():
    folded = fold([change("a"), change("a"), change("b", "k2"), change("a")])
    assert [(c["eventId"], c["changeKey"]) for c in folded] == [("a", "k1"), ("b", "k2")]


def test_disagreeing_change_keys_are_not_trusted_and_a_delete_stays_a_claim():
    (folded,) = fold([change("a", "k1"), change("a", "k2")])
    assert folded["changeKey"] is None  # Graph does not promise order: read Graph
    (deleted,) = fold([change("a", "k1"), change("a", None, "deleted", "")])
    assert deleted["changeType"] == "deleted" and deleted["subscriptionId"] == "s"


def test_items_that_are_not_objects_are_ignored():
    assert fold([change("a"), "junk", 3]) == [change("a")]  # type: ignore[list-item]
