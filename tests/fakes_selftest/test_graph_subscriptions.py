"""FakeGraph's subscriptions as Microsoft Learn documents them (tests/fakes/graph/subscriptions.py cites the pages):
duplicates, limits, lost answers, spellings."""

from __future__ import annotations

import pytest

from tests.fakes import FakeGraph
from tests.fakes_selftest.test_fakes import Receiver, expiry, subscribe


@pytest.fixture
def graph():
    with FakeGraph(seed=11) as fake:
        yield fake


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_a_duplicate_create_makes_a_second_live_subscription_and_both_notify(graph, receiver):
    uid = graph.add_user()["id"]
    first, second = (subscribe(graph, uid, receiver.url()) for _ in range(2))
    assert first.status_code == second.status_code == 201 and first.json()["id"] != second.json()["id"]
    graph.notify(uid, graph.create_event(uid)["id"], "created")
    assert {n["subscriptionId"] for n in receiver.notifications()} == {first.json()["id"], second.json()["id"]}


def test_the_per_mailbox_limit_answers_429_subscription_count_reached(graph, receiver):
    graph.subscriptions_per_mailbox = 2
    uid = graph.add_user()["id"]
    assert [subscribe(graph, uid, receiver.url()).status_code for _ in range(2)] == [201, 201]
    refused = subscribe(graph, uid, receiver.url())
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "SubscriptionCountReached"
    assert int(refused.headers["Retry-After"]) > 86_400  # absurd: treat as permanent
    other = graph.add_user()["id"]
    assert subscribe(graph, other, receiver.url()).status_code == 201


def test_the_expiry_cap_names_the_allowed_minutes(graph, receiver):
    graph.max_subscription_minutes = 4230
    uid = graph.add_user()["id"]
    refused = subscribe(graph, uid, receiver.url(), expirationDateTime=expiry(4300))
    assert refused.status_code == 400 and "4230 minutes" in refused.json()["error"]["message"]
    assert subscribe(graph, uid, receiver.url(), expirationDateTime=expiry(4200)).status_code == 201


def test_a_lost_create_answer_leaves_a_live_subscription(graph, receiver):
    graph.lose_create_answers = 1
    uid = graph.add_user()["id"]
    assert subscribe(graph, uid, receiver.url()).status_code == 504
    assert len(graph.subscriptions()) == 1  # it exists: the caller just never learnt its id


@pytest.mark.parametrize(
    ("spelling", "template"),
    [
        ("path", "Users/{m}/Events/{e}"),
        ("tenant", "users/{m}@{t}/events/{e}"),
        ("odata", "Users('{m}')/Events('{e}')"),
    ],
)
def test_notifications_use_each_documented_resource_spelling(graph, receiver, spelling, template):
    graph.resource_spelling = spelling
    uid = graph.add_user()["id"]
    subscribe(graph, uid, receiver.url())
    eid = graph.create_event(uid)["id"]
    graph.notify(uid, eid, "created")
    [note] = receiver.notifications()
    assert note["resource"] == template.format(m=uid, e=eid, t=graph.tenant_id)
    assert note["resourceData"]["id"] == eid
