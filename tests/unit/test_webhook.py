"""Graph change notifications: every item is hostile until verified."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest

from shared.core.outlook_to_dime.webhook import (
    BEYOND_CAP_REASON,
    MAX_BODY_BYTES,
    MAX_ITEMS,
    STRAY_EVENT,
    ChangeNotification,
    LifecycleNotification,
    MalformedBody,
    TooManyItems,
    client_state_for,
    client_state_is_valid,
    etag_to_change_key,
    parse_body,
    parse_notifications,
    verified_mailbox,
    verify_item,
)

TENANT = "7a1f3c5e-0000-4000-8000-00000000aaaa"
SECRET = "current-secret-0123456789abcdef"
PREVIOUS = "previous-secret-fedcba9876543210"
SECRETS = (SECRET, PREVIOUS)
MAILBOX = "0b9d2e4f-1111-4222-8333-444455556666"
EVENT_ID = "AAMkAGI2TG93AAA=/x+y"


def hmac_hex(secret: str, mailbox: str) -> str:
    """The expected clientState, computed independently of the module: "{mailbox}.{hex HMAC}"."""
    return mailbox.lower() + "." + hmac.new(secret.encode(), mailbox.lower().encode(), hashlib.sha256).hexdigest()


def change_item(
    mailbox: str = MAILBOX,
    event_id: str = EVENT_ID,
    *,
    change_type: str = "updated",
    etag: str | None = 'W/"DwAAABYAAAB"',
    secret: str = SECRET,
    tenant: str = TENANT,
    resource_casing: str = "Users/{m}/Events/{e}",
) -> dict[str, Any]:
    resource = resource_casing.format(m=mailbox, e=event_id)
    data: dict[str, Any] = {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource, "id": event_id}
    if etag is not None:
        data["@odata.etag"] = etag
    return {
        "subscriptionId": "sub-1",
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
        "clientState": hmac_hex(secret, mailbox),
        "changeType": change_type,
        "resource": resource,
        "tenantId": tenant,
        "resourceData": data,
    }


def lifecycle_item(
    mailbox: str | None = MAILBOX, event: str = "reauthorizationRequired", *, secret: str = SECRET
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "subscriptionId": "sub-9",
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
        "clientState": hmac_hex(secret, mailbox or MAILBOX),
        "lifecycleEvent": event,
        "tenantId": TENANT,
    }
    if mailbox is not None:
        item["resource"] = f"Users/{mailbox}/Events"
    return item


def body(*items: Any) -> bytes:
    return json.dumps({"value": list(items)}).encode()


def parse(*items: Any) -> Any:
    return parse_notifications(body(*items), TENANT, SECRETS)


def dropped(parsed: Any) -> int:
    return sum(parsed.rejected.values())


# --- clientState -------------------------------------------------------------------------------


@pytest.mark.parametrize("mailbox", [MAILBOX, MAILBOX.upper()])
def test_client_state_is_the_mailbox_and_hmac_sha256_of_it(mailbox: str) -> None:
    digest = hmac.new(SECRET.encode("utf-8"), mailbox.lower().encode("utf-8"), hashlib.sha256).hexdigest()
    assert client_state_for(mailbox, SECRET) == mailbox.lower() + "." + digest
    assert verified_mailbox(client_state_for(mailbox, SECRET), SECRETS) == mailbox.lower()


def test_verified_mailbox_needs_the_right_hmac_of_that_mailbox() -> None:
    other = "ffffffff-1111-4222-8333-444455556666"
    forged = other + "." + hmac_hex(SECRET, MAILBOX).rpartition(".")[2]  # a real HMAC, another mailbox
    assert verified_mailbox(forged, SECRETS) is None
    assert verified_mailbox("not-a-guid." + "0" * 64, SECRETS) is None
    assert verified_mailbox("0" * 64, SECRETS) is None


def test_client_state_depends_on_secret_and_mailbox() -> None:
    assert client_state_for(MAILBOX, SECRET) != client_state_for(MAILBOX, PREVIOUS)
    assert client_state_for(MAILBOX, SECRET) != client_state_for(MAILBOX.replace("0b9d", "0b9e"), SECRET)


def test_client_state_fits_graph_limit() -> None:
    assert len(client_state_for(MAILBOX, SECRET)) <= 128


def test_client_state_valid_with_current_or_previous_secret() -> None:
    assert client_state_is_valid(MAILBOX, hmac_hex(SECRET, MAILBOX), SECRETS)
    assert client_state_is_valid(MAILBOX, hmac_hex(PREVIOUS, MAILBOX), SECRETS)
    assert client_state_is_valid(MAILBOX.upper(), hmac_hex(SECRET, MAILBOX), SECRETS)


@pytest.mark.parametrize(
    "client_state",
    [
        hmac_hex("a-completely-wrong-secret", MAILBOX),
        hmac_hex(SECRET, "ffffffff-1111-4222-8333-444455556666"),
        hmac_hex(SECRET, MAILBOX).upper(),
        hmac_hex(SECRET, MAILBOX)[:-1],
        hmac_hex(SECRET, MAILBOX) + "0",
        "",
        "ünïcødé",
    ],
)
def test_client_state_rejected(client_state: str) -> None:
    assert not client_state_is_valid(MAILBOX, client_state, SECRETS)


def test_previous_secret_no_longer_valid_once_rotated_out() -> None:
    assert not client_state_is_valid(MAILBOX, hmac_hex(PREVIOUS, MAILBOX), (SECRET,))
    assert not client_state_is_valid(MAILBOX, hmac_hex(SECRET, MAILBOX), ())


# --- etag --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("etag", "expected"),
    [
        (None, None),
        ("", None),
        ('W/"abc"', "abc"),
        ('"abc"', "abc"),
        ("abc", "abc"),
        ('  W/"DwAAABYAAAB+x/y=="  ', "DwAAABYAAAB+x/y=="),
        ('W/""', None),
        ('""', None),
    ],
)
def test_etag_to_change_key(etag: str | None, expected: str | None) -> None:
    assert etag_to_change_key(etag) == expected


# --- valid change notifications ----------------------------------------------------------------


@pytest.mark.parametrize(
    "casing",
    [
        "Users/{m}/Events/{e}",
        "users/{m}/events/{e}",
        "USERS/{m}/EVENTS/{e}",
        "/users/{m}/Events/{e}",
        "users/{m}@" + TENANT + "/events/{e}",
        "Users('{m}')/Events('{e}')",
        "Users('{m}@" + TENANT + "')/Events('{e}')",
    ],
)
def test_valid_item_becomes_change_notification(casing: str) -> None:
    """Every documented spelling of `resource` (Microsoft Learn,
    https://learn.microsoft.com/graph/change-notifications-delivery-webhooks; docs/verification.md)."""
    parsed = parse(change_item(MAILBOX.upper(), resource_casing=casing))
    assert not parsed.rejected
    assert parsed.lifecycle == []
    assert parsed.changes == [ChangeNotification(MAILBOX, EVENT_ID, "updated", "DwAAABYAAAB", "sub-1")]


@pytest.mark.parametrize("change_type", ["created", "updated", "deleted"])
def test_every_change_type_accepted(change_type: str) -> None:
    parsed = parse(change_item(change_type=change_type))
    assert [c.change_type for c in parsed.changes] == [change_type]


def test_resource_data_id_must_agree_with_the_resource() -> None:
    item = change_item()
    item["resourceData"]["id"] = "THE-OTHER-ID"
    parsed = parse(item)
    assert parsed.changes == [] and parsed.rejected == {"resourceData.id disagrees with the resource": 1}


@pytest.mark.parametrize("event_id", [".", "..", "a.b", "a\x00b", "a\nb", "a b", "%2e%2e", "x" * 513, "a?b", "a#b"])
def test_event_ids_outside_the_allow_list_are_dropped(event_id: str) -> None:
    parsed = parse(change_item(event_id=event_id))
    assert parsed.changes == [] and dropped(parsed) == 1


def test_mailbox_from_odata_id_when_resource_missing() -> None:
    item = change_item()
    del item["resource"]
    parsed = parse(item)
    assert [c.mailbox_id for c in parsed.changes] == [MAILBOX]


def test_missing_etag_gives_no_change_key() -> None:
    parsed = parse(change_item(etag=None))
    assert len(parsed.changes) == 1
    assert parsed.changes[0].change_key is None


def test_previous_secret_accepted_in_item() -> None:
    assert len(parse(change_item(secret=PREVIOUS)).changes) == 1


def test_tenant_compared_case_insensitively() -> None:
    assert len(parse(change_item(tenant=TENANT.upper())).changes) == 1
    assert len(parse_notifications(body(change_item()), TENANT.upper(), SECRETS).changes) == 1


# --- invalid change notifications --------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    item = change_item()
    del item[key]
    return item


def _without_data(key: str) -> dict[str, Any]:
    item = change_item()
    del item["resourceData"][key]
    return item


def _with(**changes: Any) -> dict[str, Any]:
    item = change_item()
    item.update(changes)
    return item


def _with_data(**changes: Any) -> dict[str, Any]:
    item = change_item()
    item["resourceData"].update(changes)
    return item


def _no_resource_at_all() -> dict[str, Any]:
    item = _without("resource")
    del item["resourceData"]["@odata.id"]
    return item


HUGE = "A" * 2049

INVALID_ITEMS: dict[str, Any] = {
    "foreign tenant": change_item(tenant="00000000-0000-0000-0000-000000000000"),
    "forged clientState": change_item(secret="attacker-guessed-secret"),
    "clientState of another mailbox": _with(clientState=hmac_hex(SECRET, "ffffffff-1111-4222-8333-444455556666")),
    "no tenant": _without("tenantId"),
    "no subscriptionId": _without("subscriptionId"),
    "no clientState": _without("clientState"),
    "no changeType": _without("changeType"),
    "no resourceData": _without("resourceData"),
    "no resource nor @odata.id": _no_resource_at_all(),
    "no event id": _without_data("id"),
    "empty event id": _with_data(id=""),
    "unknown changeType": _with(changeType="missed"),
    "changeType list as string": _with(changeType="created,updated"),
    "changeType wrong case": _with(changeType="Updated"),
    "resourceData not an object": _with(resourceData=["id"]),
    "resource not an event": _with(resource=f"Users/{MAILBOX}/Messages/x", resourceData={"id": EVENT_ID}),
    "empty mailbox in resource": _with(resource="Users//Events/x", resourceData={"id": EVENT_ID}),
    "tenant not a string": _with(tenantId=["7a1f3c5e-0000-4000-8000-00000000aaaa"]),
    "clientState not a string": _with(clientState={"v": hmac_hex(SECRET, MAILBOX)}),
    "subscriptionId a number": _with(subscriptionId=12345),
    "event id a number": _with_data(id=12345),
    "huge tenant": _with(tenantId=HUGE),
    "huge clientState": _with(clientState=HUGE),
    "huge subscriptionId": _with(subscriptionId=HUGE),
    "huge resource": change_item(mailbox=MAILBOX, event_id="E" * 2100),
    "huge event id only": _with_data(id="E" * 2100),
    "nested junk tenant": _with(tenantId={"a": [{"b": [1, 2, {"c": None}]}]}),
    "null everywhere": {k: None for k in change_item()},
    "empty object": {},
}


@pytest.mark.parametrize("name", list(INVALID_ITEMS))
def test_invalid_item_dropped(name: str) -> None:
    parsed = parse(INVALID_ITEMS[name])
    assert parsed.changes == []
    assert parsed.lifecycle == []
    assert dropped(parsed) == 1
    assert all(isinstance(reason, str) for reason in parsed.rejected)


@pytest.mark.parametrize("junk", [None, 1, 1.5, True, "string", [], [change_item()], ["a", {"b": 1}]])
def test_non_object_items_dropped(junk: Any) -> None:
    parsed = parse(junk)
    assert parsed.changes == []
    assert parsed.lifecycle == []
    assert dropped(parsed) == 1


@pytest.mark.parametrize(
    ("key", "junk"),
    [
        ("changeType", ["created"]),
        ("changeType", {"created": True}),
        ("lifecycleEvent", {"missed": 1}),
        ("lifecycleEvent", ["subscriptionRemoved"]),
    ],
)
def test_unhashable_type_or_event_is_dropped_not_a_crash(key: str, junk: Any) -> None:
    """A list/dict where a string is expected must be rejected, not raise TypeError (-> HTTP 500)."""
    item = change_item() if key == "changeType" else lifecycle_item()
    item[key] = junk
    parsed = parse(item)
    assert parsed.changes == []
    assert parsed.lifecycle == []
    assert dropped(parsed) == 1


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(rb'{"value": [{"tenantId": "\ud800", "subscriptionId": "s", "clientState": "c"}]}', id="tenant"),
        pytest.param(
            b'{"value": [{"tenantId": "' + TENANT.encode() + rb'", "subscriptionId": "s", "clientState": "\udfff",'
            rb' "changeType": "updated", "resource": "Users/m/Events/e", "resourceData": {"id": "e"}}]}',
            id="clientState",
        ),
        pytest.param(
            b'{"value": [{"tenantId": "' + TENANT.encode() + rb'", "subscriptionId": "s", "clientState": "c",'
            rb' "changeType": "updated", "resource": "Users/\udc00/Events/e", "resourceData": {"id": "e"}}]}',
            id="mailbox",
        ),
        pytest.param(b'{"value": [{"tenantId": "\xed\xa0\x80"}]}', id="utf8-encoded-surrogate-bytes"),
    ],
)
def test_lone_surrogates_are_dropped_not_a_crash(raw: bytes) -> None:
    """JSON may carry lone UTF-16 surrogates (\\ud800); encoding them to UTF-8 raises UnicodeEncodeError."""
    try:
        parsed = parse_notifications(raw, TENANT, SECRETS)
    except MalformedBody:
        return  # refusing the whole body is acceptable too
    assert parsed.changes == []
    assert parsed.lifecycle == []
    assert dropped(parsed) == 1


def test_rejected_reasons_do_not_echo_the_input() -> None:
    secret_looking = "hostile-" + "Z" * 50
    parsed = parse(_with(clientState=secret_looking), _with(tenantId=secret_looking))
    assert dropped(parsed) == 2
    assert all(secret_looking not in reason for reason in parsed.rejected)


def test_mix_of_valid_and_invalid_items() -> None:
    valid = [
        change_item(event_id=f"event-{i}", change_type=("created", "updated", "deleted")[i % 3]) for i in range(10)
    ]
    invalid = [
        INVALID_ITEMS["foreign tenant"],
        INVALID_ITEMS["forged clientState"],
        "not an object",
        INVALID_ITEMS["huge clientState"],
        INVALID_ITEMS["unknown changeType"],
    ]
    items = [*valid[:3], invalid[0], *valid[3:6], invalid[1], invalid[2], *valid[6:], invalid[3], invalid[4]]
    parsed = parse(*items)
    assert len(parsed.changes) == 10
    assert dropped(parsed) == 5
    assert parsed.lifecycle == []
    assert [c.event_id for c in parsed.changes] == [f"event-{i}" for i in range(10)]


def test_notifications_from_several_mailboxes() -> None:
    other = "ffffffff-1111-4222-8333-444455556666"
    parsed = parse(change_item(MAILBOX, "e1"), change_item(other, "e2"))
    assert parsed.subscription_ids() == {"sub-1"}
    assert [(c.mailbox_id, c.event_id) for c in parsed.changes] == [(MAILBOX, "e1"), (other, "e2")]


def test_duplicate_items_are_all_kept_for_the_worker_to_deduplicate() -> None:
    parsed = parse(change_item(), change_item())
    assert len(parsed.changes) == 2


def test_a_post_computes_one_hmac_per_distinct_client_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Items of one subscription share a clientState: one HMAC per POST, not per item; a forged
    clientState among them is still refused, and nothing is remembered beyond the POST."""
    import shared.core.outlook_to_dime.webhook as webhook

    calls: list[str] = []
    real = webhook.client_state_for
    monkeypatch.setattr(
        webhook, "client_state_for", lambda mailbox, secret: calls.append(mailbox) or real(mailbox, secret)
    )
    forged = _with(clientState=hmac_hex("a-completely-wrong-secret", MAILBOX))
    items = [*(change_item(MAILBOX, f"e{i}") for i in range(19)), forged]

    parsed = parse(*items)

    assert len(parsed.changes) == 19 and parsed.rejected == {"bad clientState": 1}
    assert len(calls) == 2 * len(SECRETS)  # the shared clientState once, the forged one once
    calls.clear()
    assert len(parse(*items).changes) == 19 and len(calls) == 2 * len(SECRETS)  # a new POST checks again


def test_verify_item_does_not_mutate_input() -> None:
    item = change_item()
    snapshot = copy.deepcopy(item)
    verify_item(item, TENANT, SECRETS)
    assert item == snapshot


# --- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
def test_lifecycle_without_resource_takes_the_mailbox_from_the_client_state(event: str) -> None:
    """Lifecycle items carry no resource (https://learn.microsoft.com/graph/change-notifications-lifecycle-events): no
    table read needed."""
    parsed = parse(lifecycle_item(None, event))
    assert parsed.changes == []
    assert not parsed.rejected
    assert parsed.lifecycle == [LifecycleNotification(MAILBOX, "sub-9", event, "2026-11-29T00:00:00Z")]


def test_lifecycle_message_shape() -> None:
    (notification,) = parse(lifecycle_item(event="missed")).lifecycle
    assert notification.to_message() == {
        "mailboxId": MAILBOX,
        "subscriptionId": "sub-9",
        "lifecycleEvent": "missed",
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
    }


def test_lifecycle_items_are_deduplicated_per_post() -> None:
    flood = [lifecycle_item(None, "missed")] * 500 + [lifecycle_item(None, "reauthorizationRequired")]
    parsed = parse(*flood)
    assert [n.lifecycle_event for n in parsed.lifecycle] == ["missed", "reauthorizationRequired"]
    assert parsed.rejected == {"duplicate lifecycle item": 499}


def test_our_own_stray_event_is_not_accepted_from_outside() -> None:
    parsed = parse(lifecycle_item(None, STRAY_EVENT))
    assert parsed.lifecycle == [] and dropped(parsed) == 1


# --- the subscription must be ours, for that mailbox ---------------------------------------------


def test_keep_owned_drops_items_of_unknown_or_foreign_subscriptions_and_only_unknown_ones_are_strays() -> None:
    other = "ffffffff-1111-4222-8333-444455556666"
    stray_id = "5e1d0c3b-0000-4000-8000-000000000009"
    unknown = lifecycle_item(None, "missed")
    unknown["subscriptionId"] = stray_id
    not_graphs = lifecycle_item(None, "reauthorizationRequired")  # "sub-9": no GUID, nothing to delete
    parsed = parse(change_item(MAILBOX, "e1"), change_item(other, "e2"), unknown, not_graphs)
    strays = parsed.keep_owned({"sub-1": MAILBOX})
    assert [c.event_id for c in parsed.changes] == ["e1"]
    assert parsed.lifecycle == []
    assert strays == {(stray_id, MAILBOX)}  # sub-1 is MAILBOX's: never deleted because of `other`
    # MAILBOX's third distinct id (sub-9) is beyond the two looked up per mailbox per POST
    assert parsed.rejected == {
        "subscription unknown to the table": 1,
        "subscription of another mailbox": 1,
        BEYOND_CAP_REASON: 1,
    }


def test_only_the_first_two_subscription_ids_of_a_mailbox_survive_parsing() -> None:
    """The clientState names the mailbox before any lookup: a POST of 499 ids asks about two."""
    other = "ffffffff-1111-4222-8333-444455556666"
    items = []
    for n in range(998):
        item = change_item(MAILBOX, f"e{n}")
        item["subscriptionId"] = f"sub-{n % 499}"  # 499 distinct ids, each twice
        items.append(item)
    items += [change_item(other, "o1"), change_item(other, "o2")]
    parsed = parse(*items)
    assert parsed.subscription_ids() == {"sub-0", "sub-1"}  # the other mailbox's items name sub-1
    assert [c.event_id for c in parsed.changes if c.mailbox_id == MAILBOX] == ["e0", "e1", "e499", "e500"]
    assert [c.event_id for c in parsed.changes if c.mailbox_id == other] == ["o1", "o2"]
    assert parsed.rejected == {BEYOND_CAP_REASON: 994}


def test_the_cap_counts_lifecycle_items_with_the_changes_of_their_mailbox() -> None:
    first, second = change_item(MAILBOX, "e1"), change_item(MAILBOX, "e2")
    second["subscriptionId"] = "sub-2"
    parsed = parse(first, second, lifecycle_item(None, "missed"))  # "sub-9": a third id of MAILBOX
    assert parsed.lifecycle == [] and len(parsed.changes) == 2
    assert parsed.rejected == {BEYOND_CAP_REASON: 1}


def test_lifecycle_forged_client_state_dropped() -> None:
    parsed = parse(lifecycle_item(secret="not-the-secret-at-all"))
    assert parsed.lifecycle == []
    assert dropped(parsed) == 1


@pytest.mark.parametrize("event", ["unknownEvent", "", "Missed", "subscriptionremoved", 7])
def test_unknown_lifecycle_event_dropped(event: Any) -> None:
    parsed = parse(lifecycle_item(event=event))
    assert parsed.lifecycle == []
    assert parsed.changes == []
    assert dropped(parsed) == 1


def test_lifecycle_foreign_tenant_dropped() -> None:
    item = lifecycle_item()
    item["tenantId"] = "00000000-0000-0000-0000-000000000000"
    assert dropped(parse(item)) == 1


def test_lifecycle_huge_expiration_is_dropped_to_none() -> None:
    item = lifecycle_item()
    item["subscriptionExpirationDateTime"] = HUGE
    (notification,) = parse(item).lifecycle
    assert notification.expiration is None


# --- malformed bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"value"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"42", id="number"),
        pytest.param(b"{}", id="no-value"),
        pytest.param(b'{"Value": []}', id="wrong-case-key"),
        pytest.param(b'{"value": {"0": {}}}', id="value-object"),
        pytest.param(b'{"value": "[]"}', id="value-string"),
        pytest.param(b'{"value": null}', id="value-null"),
        pytest.param(b'{"value": [\xff\xfe\xfa]}', id="invalid-utf8-in-array"),
        pytest.param(b'{"value": ["\xc3\x28"]}', id="invalid-utf8-in-string"),
        pytest.param(b"[" * 100_000, id="deeply-nested-open"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested-closed"),
        pytest.param(b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deeply-nested-value"),
        pytest.param(b'{"value": [' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"]}", id="deeply-nested-objects"),
        pytest.param(b'{"value": [' + b"1" * 5000 + b"]}", id="huge-integer-literal"),
    ],
)
def test_malformed_body(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_notifications(raw, TENANT, SECRETS)


def test_too_many_items_refused_as_a_whole_before_verifying_any() -> None:
    with pytest.raises(TooManyItems):
        parse_notifications(body(*([change_item()] * (MAX_ITEMS + 1))), TENANT, SECRETS)
    assert len(parse_notifications(body(*([change_item()] * MAX_ITEMS)), TENANT, SECRETS).changes) == MAX_ITEMS


def test_body_over_one_mebibyte_refused_before_parsing() -> None:
    filler = json.dumps({"value": [], "pad": "x" * MAX_BODY_BYTES}).encode()
    assert len(filler) > 1024 * 1024
    with pytest.raises(MalformedBody):
        parse_notifications(filler, TENANT, SECRETS)


def test_body_limit_holds_the_largest_legitimate_post_and_the_limit_itself() -> None:
    # Graph's largest POST (MAX_ITEMS notifications) fits: the limit refuses only what Graph never
    # sends.
    assert len(body(*([change_item()] * MAX_ITEMS))) <= MAX_BODY_BYTES
    # A body just under the limit is still parsed.
    item = change_item()
    raw = json.dumps({"value": [item], "pad": ""}).encode()
    raw = raw[:-2] + b"x" * (MAX_BODY_BYTES - len(raw)) + raw[-2:]
    assert len(raw) == MAX_BODY_BYTES
    assert len(parse_notifications(raw, TENANT, SECRETS).changes) == 1


def test_malformed_body_is_a_value_error_with_a_safe_message() -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_body(b"{<script>alert(1)</script>")
    assert "<script>" not in str(caught.value)


def test_empty_value_list_is_fine() -> None:
    parsed = parse_notifications(b'{"value": []}', TENANT, SECRETS)
    assert (parsed.changes, parsed.lifecycle, dropped(parsed)) == ([], [], 0)


def test_utf8_bom_and_extra_keys_accepted() -> None:
    raw = b"\xef\xbb\xbf" + json.dumps({"value": [change_item()], "validationTokens": ["x"]}).encode()
    assert len(parse_notifications(raw, TENANT, SECRETS).changes) == 1


def test_deep_junk_inside_an_item_is_dropped_not_fatal() -> None:
    junk: Any = "leaf"
    for _ in range(200):
        junk = {"x": [junk]}
    parsed = parse(junk, _with(resourceData={"id": junk}), change_item())
    assert len(parsed.changes) == 1
    assert dropped(parsed) == 2


# --- queue message round trip ------------------------------------------------------------------


@pytest.mark.parametrize("change_key", ["DwAAABYAAAB", None])
def test_change_notification_message_round_trip(change_key: str | None) -> None:
    original = ChangeNotification(MAILBOX, EVENT_ID, "deleted", change_key, "sub-1")
    message = original.to_message()
    assert message == {
        "mailboxId": MAILBOX,
        "eventId": EVENT_ID,
        "changeType": "deleted",
        "changeKey": change_key,
        "subscriptionId": "sub-1",
    }
    assert ChangeNotification.from_message(json.loads(json.dumps(message))) == original


def test_from_message_tolerates_missing_optional_fields() -> None:
    restored = ChangeNotification.from_message({"mailboxId": MAILBOX, "eventId": "e", "changeType": "updated"})
    assert restored == ChangeNotification(MAILBOX, "e", "updated", None, "")


def test_from_message_requires_ids() -> None:
    with pytest.raises(KeyError):
        ChangeNotification.from_message({"eventId": "e", "changeType": "updated"})
