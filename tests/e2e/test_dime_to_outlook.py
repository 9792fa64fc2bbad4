"""Dime.Scheduler → Outlook through the functions: publication POST → real Azurite queue → the queue
function → FakeGraph, and the Outlook → Dime.Scheduler path seeing our own events (no loops).

Requests are counted on the fakes: the figures per planner change in the README come from here.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime

import azure.functions as func
import pytest

import function_app
from shared.core.dime_to_outlook.publication import items_of
from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID
from shared.names import NOTIFICATIONS_QUEUE, PUBLICATIONS_QUEUE
from shared.usecases.dime_to_outlook.reconcile import run_dime_reconcile
from tests.conftest import DIME_PUBLICATIONS_KEY, MANAGE_HEADERS, make_services, notification_item, settings_env, track
from tests.host import call_function, fire_timer, run_queue

START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
END = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def publish(
    body, change: str | None = None, auth: str | None = None, key: str | None = DIME_PUBLICATIONS_KEY
) -> func.HttpResponse:
    headers = {"Authorization": auth} if auth else {}
    params = {"code": key} if key else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if change is None:
        request = func.HttpRequest("POST", "/api/dime/publications", body=data, headers=headers, params=params)
        return call_function(function_app.dime_publications, request)
    request = func.HttpRequest(
        "POST",
        f"/api/dime/publications/{change}",
        body=data,
        headers=headers,
        params=params,
        route_params={"change": change},
    )
    return call_function(function_app.dime_publications_change, request)


def work(services) -> None:
    run = run_queue(services, PUBLICATIONS_QUEUE, function_app.apply_dime_publication)
    assert run.poisoned == 0, run.errors


def echo(services, graph, mailbox: str, event_id: str, times: int = 3) -> None:
    """Graph's notifications about an event (our own write): the Outlook → Dime.Scheduler path."""
    event = graph.get_event(mailbox, event_id)
    change = event["changeKey"] if event else None
    item = notification_item(mailbox, event_id, "updated" if event else "deleted", change)
    body = json.dumps({"value": [item] * times}).encode()
    answer = function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body))
    assert answer.status_code == 202
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
    assert run.poisoned == 0, run.errors


def onboard(services, user: dict) -> None:
    """As PUT /api/manage/resources does: the resource row and the subscription row whose id
    notification_item() sends (the webhook accepts items only from subscriptions the app holds)."""
    track(services, user)


@pytest.fixture
def people(graph, dime, services):
    """Two onboarded people (as after PUT /api/manage/resources) who are also Dime.Scheduler resources."""
    jane = graph.add_user(mail="jane@contoso.com")
    tom = graph.add_user(mail="tom@contoso.com")
    onboard(services, jane)
    onboard(services, tom)
    dime.board.add_resource("R-JANE", "jane@contoso.com")
    dime.board.add_resource("R-TOM", "tom@contoso.com")
    dime.board.add_resource("R-OFF", "off@contoso.com", exchange_enabled=False)
    dime.board.add_resource("R-NOMAIL", None)
    return {"jane": jane, "tom": tom}


def planned(dime, guid: str) -> dict:
    board = dime.board
    return board.payload(board.appointments[guid])


def ours(graph, mailbox: str) -> list[dict]:
    return [
        e
        for e in graph.events(mailbox)
        if TAG_PROPERTY_ID in {p["id"] for p in e.get("singleValueExtendedProperties", [])}
    ]


def graph_writes(graph) -> list[str]:
    return [f"{r.method} {r.path}" for r in graph.requests if r.method in ("POST", "PATCH", "DELETE")]


def test_a_planned_appointment_lands_in_the_assigned_calendar(graph, dime, services, people):
    guid = dime.board.plan("Install heat pump", START, END, ["R-JANE"], body="Bring the ladder", category="Install")
    assert publish(planned(dime, guid), "created").status_code == 200
    work(services)

    [event] = ours(graph, people["jane"]["id"])
    assert event["subject"] == "Install heat pump"
    assert event["start"]["dateTime"].startswith("2026-11-24T08:00:00")
    assert event["showAs"] == "busy" and event["attendees"] == [] and event["categories"] == ["Install"]
    assert "Bring the ladder" in event["body"]["content"] and "job JOB-1" in event["body"]["content"]
    assert event["transactionId"]
    assert graph.events(people["tom"]["id"]) == []
    link = services.store.get_link(people["jane"]["id"], event["id"])
    assert link.origin == "dime" and link.appointment_guid == guid and link.change_key == event["changeKey"]
    [tx] = [t for t in services.store.transactions_of(people["jane"]["id"])]
    assert (tx.direction, tx.operation, tx.status.value, tx.reason) == ("dime-to-outlook", "create", "succeeded", "new")


def test_requests_per_planner_change(graph, dime, services, people):
    """One appointment, one resource: a create is 1 Graph write and 1 Dime.Scheduler read (GET
    /resource, cached for 5 minutes); a move is 1 PATCH, the calendarView that proves the patched
    event is still in the calendar (a PATCH of an event in Deleted Items may succeed), and no
    Dime.Scheduler call at all."""
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    graph.reset_requests()
    dime.reset_calls()
    publish(planned(dime, guid), "created")
    work(services)
    assert graph_writes(graph) == [f"POST /v1.0/users/{people['jane']['id']}/events"]
    assert len(graph.requests) == 1 and len(dime.requests) == 1 and dime.requests[0].path == "/resource"

    graph.reset_requests()
    dime.reset_calls()
    dime.board.update(guid, start=START.replace(hour=13), end=END.replace(hour=15))
    publish(planned(dime, guid), "updated")
    work(services)
    assert [r.method for r in graph.requests] == ["PATCH", "GET"] and dime.requests == []
    assert "/calendar/calendarView" in graph.requests[1].path
    [event] = ours(graph, people["jane"]["id"])
    assert event["start"]["dateTime"].startswith("2026-11-24T13:00:00")

    # Reassigned from Jane to Tom: one DELETE and one POST, still no Dime.Scheduler call.
    graph.reset_requests()
    dime.board.update(guid, resources=["R-TOM"])
    publish(planned(dime, guid), "updated")
    work(services)
    assert sorted(r.method for r in graph.requests) == ["DELETE", "POST"] and dime.requests == []
    assert ours(graph, people["jane"]["id"]) == [] and len(ours(graph, people["tom"]["id"])) == 1


def test_duplicates_and_an_unchanged_publication_cost_no_graph_request(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    for _ in range(3):
        publish(planned(dime, guid), "created")
    work(services)
    graph.reset_requests()
    publish(planned(dime, guid), "updated")
    work(services)
    assert len(ours(graph, people["jane"]["id"])) == 1
    assert graph.requests == []


def test_deleted_appointment_leaves_a_tombstone_older_publications_are_dropped(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    created = planned(dime, guid)
    dime.board.update(guid, subject="Visit (moved)")
    updated = planned(dime, guid)
    publish(created, "created")
    publish(updated, "updated")
    work(services)
    dime.board.delete(guid)
    publish(updated, "deleted")
    work(services)
    assert ours(graph, people["jane"]["id"]) == []

    graph.reset_requests()
    publish(created, "created")  # a late, replayed create
    publish(updated, "updated")
    work(services)
    assert ours(graph, people["jane"]["id"]) == [] and graph.requests == []


def test_stale_update_after_a_newer_one_is_dropped(graph, dime, services, people):
    guid = dime.board.plan("First", START, END, ["R-JANE"])
    first = planned(dime, guid)
    dime.board.update(guid, subject="Second")
    second = planned(dime, guid)
    publish(second, "updated")
    work(services)
    publish(first, "created")  # arrives late
    work(services)
    [event] = ours(graph, people["jane"]["id"])
    assert event["subject"] == "Second"


def services_with(azurite, graph, dime, monkeypatch, people, **env):
    """Services with other settings, the same two people onboarded (the storage is emptied)."""
    from tests.conftest import clean_storage

    built = make_services(settings_env(azurite, graph.base_url, dime.base_url, **env))
    clean_storage(built)
    for person in people.values():
        onboard(built, person)
    monkeypatch.setattr(function_app, "services", lambda: built)
    return built


def user_lookups(graph) -> list[str]:
    return [r.path for r in graph.requests if r.method == "GET" and r.path.lower().startswith("/v1.0/users/")
            and "/events" not in r.path.lower() and "/calendar" not in r.path.lower()]  # fmt: skip


def test_a_resource_who_is_not_onboarded_gets_nothing_by_default_and_graph_is_not_asked(graph, dime, services, people):
    """DIME_OUTLOOK_TARGETS=onboarded (the default): a tenant mailbox that nobody onboarded here is
    no target, even when Dime.Scheduler's directory holds its e-mail with Exchange integration on."""
    eva = graph.add_user(mail="eva@contoso.com")
    dime.board.add_resource("R-EVA", "eva@contoso.com")
    guid = dime.board.plan("One", START, END, ["R-EVA", "R-JANE"])
    graph.reset_requests()
    publish(planned(dime, guid), "created")
    work(services)
    assert graph.events(eva["id"]) == [] and len(ours(graph, people["jane"]["id"])) == 1
    assert user_lookups(graph) == []
    from shared.adapters.storage.event_links_store import EventLinkStore

    state, _ = EventLinkStore(services.store).read(guid)
    assert dict(state.unmatched) == {"R-EVA": "not-onboarded"}


def test_directory_targets_find_a_mailbox_through_graph_once(azurite, graph, dime, people, monkeypatch):
    """DIME_OUTLOOK_TARGETS=directory: any tenant mailbox matching the directory's e-mail, looked up
    in Graph once (cached); a directory e-mail without a mailbox is reported `no-mailbox`."""
    services = services_with(azurite, graph, dime, monkeypatch, people, DIME_OUTLOOK_TARGETS="directory")
    eva = graph.add_user(mail="eva@contoso.com")
    dime.board.add_resource("R-EVA", "eva@contoso.com")
    dime.board.add_resource("R-GONE", "left-the-company@contoso.com")
    first = dime.board.plan("One", START, END, ["R-EVA", "R-GONE"])
    second = dime.board.plan("Two", START, END, ["R-EVA"])
    graph.reset_requests()
    publish(planned(dime, first), "created")
    publish(planned(dime, second), "created")
    work(services)
    assert len(ours(graph, eva["id"])) == 2
    assert sorted(user_lookups(graph)) == ["/v1.0/users/eva@contoso.com", "/v1.0/users/left-the-company@contoso.com"]
    from shared.adapters.storage.event_links_store import EventLinkStore

    state, _ = EventLinkStore(services.store).read(first)
    assert dict(state.unmatched) == {"R-GONE": "no-mailbox"}


# Hostile callers: whoever holds the publications key ----------------------------------------


def forged(guid: str, assignments: list) -> dict:
    return {
        "AppointmentGuid": guid,
        "Subject": "Forged",
        "StartDate": "2026-11-24T08:00:00Z",
        "EndDate": "2026-11-24T09:00:00Z",
        "Assignments": assignments,
    }


@pytest.mark.parametrize("targets", ["onboarded", "directory"])
def test_a_forged_publication_naming_a_tenant_mailbox_writes_nothing_into_it(
    azurite, graph, dime, people, monkeypatch, targets
):
    """The CEO's mailbox exists in the tenant (Graph knows it); nobody onboarded it and the
    directory does not hold its e-mail. Naming it in a payload, alone, beside a real resource
    number, or beside a forged one, writes nothing into it and never looks it up in Graph."""
    services = services_with(azurite, graph, dime, monkeypatch, people, DIME_OUTLOOK_TARGETS=targets)
    ceo = graph.add_user(mail="ceo@contoso.com")
    guid = "6c1b6a2e-1111-4c3d-9e8f-00000000f001"
    body = forged(
        guid,
        [
            {"Resource": {"Email": "ceo@contoso.com"}},
            {"Resource": {"ResourceNo": "R-JANE", "Email": "ceo@contoso.com"}},
            {"Resource": {"ResourceNo": "R-CEO", "Email": "ceo@contoso.com"}},
            {"ResourceNo": "R-TOM", "Email": "CEO@contoso.com"},
        ],
    )
    graph.reset_requests()
    assert publish(body, "created").status_code == 200
    work(services)
    assert graph.events(ceo["id"]) == []
    assert ours(graph, people["jane"]["id"]) == [] and ours(graph, people["tom"]["id"]) == []
    assert graph.requests == []  # no lookup, no write
    from shared.adapters.storage.event_links_store import EventLinkStore

    state, links = EventLinkStore(services.store).read(guid)
    assert links == {}
    assert sorted(state.unmatched) == [
        ("R-CEO", "resource-unknown"),
        ("R-JANE", "email-mismatch"),
        ("R-TOM", "email-mismatch"),
        ("ceo@contoso.com", "resource-unknown"),
    ]


@pytest.mark.parametrize("targets", ["onboarded", "directory"])
def test_a_directory_resource_nobody_onboarded_is_written_only_when_widened(
    azurite, graph, dime, people, monkeypatch, targets
):
    """The directory holds the CEO (Exchange integration on) but nobody onboarded her: by default
    a forged assignment of her number writes nothing; `directory` is the administrator's choice."""
    services = services_with(azurite, graph, dime, monkeypatch, people, DIME_OUTLOOK_TARGETS=targets)
    ceo = graph.add_user(mail="ceo@contoso.com")
    dime.board.add_resource("R-CEO", "ceo@contoso.com")
    publish(forged("6c1b6a2e-1111-4c3d-9e8f-00000000f002", [{"ResourceNo": "R-CEO"}]), "created")
    work(services)
    assert len(ours(graph, ceo["id"])) == (1 if targets == "directory" else 0)


def test_a_payload_email_that_disagrees_with_the_directory_gets_nothing_and_is_reported(graph, dime, services, people):
    """A real publication whose assignment carries an e-mail the resource record does not hold:
    nothing is written to the payload's e-mail (nor to the record's: the payload is suspect), the
    unmatched report says `email-mismatch`."""
    import asyncio

    from shared.usecases.dime_to_outlook.unmatched import unmatched

    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    body = planned(dime, guid)
    body["Assignments"][0]["Resource"]["Email"] = "tom@contoso.com"  # Tom is onboarded: still no target
    publish(body, "created")
    work(services)
    assert ours(graph, people["tom"]["id"]) == [] and ours(graph, people["jane"]["id"]) == []
    report = json.loads(asyncio.run(unmatched(services)).body)["items"]
    assert [(i["resource"], i["reason"]) for i in report] == [("R-JANE", "email-mismatch")]


def test_a_record_whose_email_changed_since_the_cached_listing_is_read_again_not_refused(graph, dime, services, people):
    """The cached GET /resource is up to 5 minutes old: a publication whose e-mail disagrees with it
    reads the listing again (at most once a minute) before refusing anything."""
    from shared.usecases.dime_to_outlook.place_appointment import directory_of

    dime.board.add_resource("R-T2", "tom.old@contoso.com")
    first = dime.board.plan("Warm the cache", START, END, ["R-JANE"])
    publish(planned(dime, first), "created")
    work(services)
    dime.board.resources["R-T2"]["email"] = "tom@contoso.com"  # changed in Dime.Scheduler meanwhile
    directory_of(services).loaded_at -= 61
    dime.reset_calls()
    guid = dime.board.plan("Visit", START, END, ["R-T2"])
    publish(planned(dime, guid), "created")
    work(services)
    assert len(ours(graph, people["tom"]["id"])) == 1
    assert [r.path for r in dime.requests] == ["/resource"]


def test_more_than_a_hundred_assignments_is_a_failed_transaction_and_writes_nothing(graph, dime, services, people):
    from shared.adapters.storage.event_links_store import EventLinkStore

    guid = "6c1b6a2e-1111-4c3d-9e8f-00000000f003"
    body = forged(guid, [{"ResourceNo": "R-JANE"}] + [{"ResourceNo": f"R-FORGED-{n}"} for n in range(100)])
    graph.reset_requests()
    dime.reset_calls()
    assert publish(body, "created").status_code == 200
    work(services)
    assert graph.requests == [] and dime.requests == [] and ours(graph, people["jane"]["id"]) == []
    assert EventLinkStore(services.store).read(guid) == (None, {})
    [failed] = list(services.store.transactions_of("dime-scheduler"))
    assert (failed.status.value, failed.error_code, failed.appointment_guid) == ("failed", "PUBLICATION_INVALID", guid)
    assert "101 assigned resources" in failed.message

    # One resource fewer is placed.
    publish(forged(guid, body["Assignments"][:100]), "created")
    work(services)
    assert len(ours(graph, people["jane"]["id"])) == 1


def test_a_post_of_more_appointments_than_max_items_queues_nothing(services):
    """Bounded work per POST: MAX_ITEMS appointments at most (Dime.Scheduler posts one), so a key
    holder's largest POST costs a few hundred requests (scripts/bench_forged.py)."""
    from shared.usecases.dime_to_outlook.inbound import MAX_ITEMS

    assert MAX_ITEMS <= 50
    body = [forged(f"6c1b6a2e-1111-4c3d-9e8f-{n:012d}", [{"ResourceNo": "R-JANE"}]) for n in range(MAX_ITEMS + 1)]
    for _ in range(3):  # Dime.Scheduler retries every non-200: answered 200, recorded once
        assert publish(body, "created").status_code == 200
    assert services.queues.depth(PUBLICATIONS_QUEUE) == 0
    failed = list(services.store.transactions_of("dime-scheduler"))
    assert [(t.error_code, t.message) for t in failed] == [
        ("PUBLICATION_INVALID", f"{MAX_ITEMS + 1} appointments in one request; at most {MAX_ITEMS}")
    ]


@pytest.mark.parametrize("targets", ["onboarded", "directory"])
def test_a_hundred_forged_assignments_cost_a_bounded_number_of_requests(
    azurite, graph, dime, people, monkeypatch, targets
):
    """100 assignments of real numbers with forged e-mails, forged numbers, forged e-mails alone:
    no Graph request at all, at most two GET /resource (a refresh for the unknown numbers), one
    read of the resources table (the onboarded people), whatever the e-mails."""
    services = services_with(azurite, graph, dime, monkeypatch, people, DIME_OUTLOOK_TARGETS=targets)
    victims = [graph.add_user(mail=f"victim{n}@contoso.com") for n in range(100)]
    assignments = []
    for n in range(100):
        kind = n % 3
        if kind == 0:
            assignments.append({"ResourceNo": "R-JANE" if n % 2 else "R-TOM", "Email": f"victim{n}@contoso.com"})
        elif kind == 1:
            assignments.append({"ResourceNo": f"R-FORGED-{n}", "Email": f"victim{n}@contoso.com"})
        else:
            assignments.append({"Email": f"victim{n}@contoso.com"})
    from shared.adapters.storage.aio_stores import AsyncStateStore

    reads = []
    real = AsyncStateStore.list_resources

    async def counted(store):
        reads.append(1)
        return await real(store)

    monkeypatch.setattr(AsyncStateStore, "list_resources", counted)
    graph.reset_requests()
    dime.reset_calls()
    publish(forged("6c1b6a2e-1111-4c3d-9e8f-00000000f004", assignments), "created")
    work(services)
    assert graph.requests == []
    assert len(dime.requests) <= 2 and {r.path for r in dime.requests} == {"/resource"}
    assert len(reads) <= 1
    assert all(graph.events(victim["id"]) == [] for victim in victims)


def test_ineligible_resources_are_reported_not_written(graph, dime, services, people):
    guid = dime.board.plan("Team day", START, END, ["R-JANE", "R-OFF", "R-NOMAIL", "R-GHOST"])
    publish(planned(dime, guid), "created")
    work(services)
    assert len(ours(graph, people["jane"]["id"])) == 1
    from shared.adapters.storage.event_links_store import EventLinkStore

    state, links = EventLinkStore(services.store).read(guid)
    assert dict(state.unmatched) == {
        "R-OFF": "integration-disabled",
        "R-NOMAIL": "no-email",
        "R-GHOST": "resource-unknown",
    }
    assert list(links) == [people["jane"]["id"]]


def test_our_events_echo_costs_no_graph_read_and_no_dime_write(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, people["jane"]["id"])
    graph.reset_requests()
    dime.reset_calls()
    echo(services, graph, people["jane"]["id"], event["id"], times=3)
    assert dime.writes == 0 and dime.calls == []
    assert graph.requests == []  # the notification's changeKey equals the link's


def test_notification_before_the_link_is_saved_is_recognised_by_the_tag(graph, dime, services, people):
    """Graph can notify our create before our link row exists: the tag on the event says "ours"."""
    jane = people["jane"]["id"]
    event = graph.create_event(
        jane, subject="Visit", extended_properties={TAG_PROPERTY_ID: "0b0e8c5e-0000-4000-8000-000000000001|R-JANE"}
    )
    dime.reset_calls()
    echo(services, graph, jane, event["id"], times=2)
    assert dime.calls == [] and services.store.get_link(jane, event["id"]) is None


def test_delta_never_imports_our_events_whose_link_is_not_saved_yet(graph, dime, services, people):
    """Delta reads events new to us as a batch (one /import per page): our own events among them
    (tagged, their link not yet saved, e.g. a delta run between Graph's create and our link write)
    must not go to the planning board, or the planner's appointment comes back as a second one."""

    jane = people["jane"]["id"]
    for n in range(3):
        tag = f"0b0e8c5e-0000-4000-8000-00000000001{n}|R-JANE"
        graph.create_event(jane, subject=f"Planned {n}", extended_properties={TAG_PROPERTY_ID: tag})
    graph.create_event(jane, subject="Dentist")
    dime.reset_calls()
    fire_timer(function_app.delta_timer, services)
    subjects = sorted(params.get("Subject") for procedure, params in dime.calls if "Subject" in params)
    assert subjects == ["Dentist"]


def test_a_planner_owned_event_moved_in_outlook_is_reverted(graph, dime, services, people):
    jane = people["jane"]["id"]
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, jane)
    graph.update_event(jane, event["id"], start="2026-11-24T15:00:00", end="2026-11-24T16:00:00")
    dime.reset_calls()
    graph.reset_requests()
    echo(services, graph, jane, event["id"])
    [after] = ours(graph, jane)
    assert after["start"]["dateTime"].startswith("2026-11-24T08:00:00")
    assert dime.calls == []
    writes = [r.method for r in graph.requests if r.method != "GET" and not r.path.endswith("$batch")]
    assert writes == ["PATCH"]  # (the worker reads with $batch, a POST)
    graph.reset_requests()
    echo(services, graph, jane, event["id"])  # the revert's own echo
    assert graph.requests == []


def test_a_planner_owned_event_deleted_in_outlook_comes_back(graph, dime, services, people):
    jane = people["jane"]["id"]
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, jane)
    graph.delete_event(jane, event["id"])
    echo(services, graph, jane, event["id"])
    [again] = ours(graph, jane)
    assert again["id"] != event["id"] and again["subject"] == "Visit"
    assert dime.calls == []


def test_keep_leaves_the_edit_and_records_it(azurite, graph, dime, people, monkeypatch):
    from tests.conftest import clean_storage

    services = make_services(settings_env(azurite, graph.base_url, dime.base_url, DIME_OUTLOOK_EDITS="keep"))
    clean_storage(services)
    onboard(services, people["jane"])  # again: the storage was just emptied
    monkeypatch.setattr(function_app, "services", lambda: services)
    jane = people["jane"]["id"]
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, jane)
    graph.update_event(jane, event["id"], subject="Visit (my notes)")
    echo(services, graph, jane, event["id"])
    [after] = ours(graph, jane)
    assert after["subject"] == "Visit (my notes)" and dime.calls == []
    kept = [t for t in services.store.transactions_of(jane) if t.operation == "keep"]
    assert [t.reason for t in kept] == ["outlook-edit-kept"]


def test_an_appointment_the_outlook_path_created_is_not_written_back(graph, dime, services, people):
    jane = people["jane"]["id"]
    event = graph.create_event(jane, subject="Dentist")
    echo(services, graph, jane, event["id"], times=1)
    link = services.store.get_link(jane, event["id"])
    assert link.origin == "outlook"
    payload = {
        "AppointmentGuid": link.appointment_guid,
        "Subject": "Dentist",
        "StartDate": "2026-11-23T09:00:00Z",
        "EndDate": "2026-11-23T10:00:00Z",
        "Assignments": [{"Resource": {"ResourceNo": "R-JANE", "Email": "jane@contoso.com"}}],
    }
    graph.reset_requests()
    publish(payload, "updated")
    work(services)
    assert graph.requests == [] and len(graph.events(jane)) == 1


def test_appointments_delta_imported_as_a_batch_are_not_written_back(graph, dime, services, people):
    """Delta imports a page of new events in one batch: those appointments are the Outlook path's
    too (marked before the import), so their publications never come back as a second event."""

    jane = people["jane"]["id"]
    events = [graph.create_event(jane, subject=f"Dentist {n}") for n in range(3)]
    fire_timer(function_app.delta_timer, services)
    links = [services.store.get_link(jane, event["id"]) for event in events]
    assert all(link is not None and link.origin == "outlook" for link in links)
    graph.reset_requests()
    for n, link in enumerate(links):
        payload = {
            "AppointmentGuid": link.appointment_guid,
            "Subject": f"Dentist {n}",
            "StartDate": "2026-11-23T09:00:00Z",
            "EndDate": "2026-11-23T10:00:00Z",
            "Assignments": [{"Resource": {"ResourceNo": "R-JANE", "Email": "jane@contoso.com"}}],
        }
        publish(payload, "created")
    work(services)
    assert graph_writes(graph) == [] and len(graph.events(jane)) == 3


def test_flat_camelcase_array_and_a_change_in_the_body_less_route(graph, dime, services, people):
    body = [
        {
            "appointmentGuid": "6c1b6a2e-1111-4c3d-9e8f-000000000001",
            "subject": "Flat one",
            "start": "2026-11-25T08:00:00",
            "end": "2026-11-25T09:00:00",
            "resourceNo": "R-JANE",
            "importance": 1,
        },
        {
            "appointmentguid": "6c1b6a2e-1111-4c3d-9e8f-000000000002",
            "SUBJECT": "Flat two",
            "Start": "2026-11-25T10:00:00+01:00",
            "End": "2026-11-25T11:00:00+01:00",
            "resources": ["R-TOM"],
        },
    ]
    assert publish(body).status_code == 200
    work(services)
    [one] = ours(graph, people["jane"]["id"])
    [two] = ours(graph, people["tom"]["id"])
    assert one["importance"] == "high" and one["start"]["dateTime"].startswith("2026-11-25T08:00:00")
    assert two["start"]["dateTime"].startswith("2026-11-25T09:00:00")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "PUBLICATION_MALFORMED"),
        (b'"just a string"', "PUBLICATION_MALFORMED"),
        (json.dumps({"Subject": "no guid"}).encode(), "PUBLICATION_INVALID"),
        (json.dumps({"AppointmentGuid": "6c1b6a2e-1111-4c3d-9e8f-000000000009"}).encode(), "PUBLICATION_INVALID"),
        (
            json.dumps(
                {"AppointmentGuid": "6c1b6a2e-1111-4c3d-9e8f-000000000009", "StartDate": "x", "EndDate": "y"}
            ).encode(),
            "PUBLICATION_INVALID",
        ),
    ],
)
def test_bodies_no_retry_can_fix_are_200_and_one_failed_transaction(services, body, code):
    """Dime.Scheduler retries every non-200 answer (and opens its breaker): 200, recorded once."""
    for _ in range(3):  # delivered again by Dime.Scheduler: still one row
        answer = publish(body, "updated")
        assert answer.status_code == 200 and b"failed transaction" in answer.get_body()
    failed = [t for t in services.store.transactions_of("dime-scheduler")]
    assert [(t.status.value, t.error_code) for t in failed] == [("failed", code)]
    assert failed[0].payload["received"] == body.decode()
    assert services.queues.depth(PUBLICATIONS_QUEUE) == 0


def test_a_delete_needs_only_the_guid(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    assert publish({"AppointmentGuid": guid}, "deleted").status_code == 200
    work(services)
    assert ours(graph, people["jane"]["id"]) == []


def test_unknown_change_is_404_and_touches_nothing(services):
    assert publish({"AppointmentGuid": "6c1b6a2e-1111-4c3d-9e8f-000000000001"}, "moved").status_code == 404
    assert list(services.store.transactions_of("dime-scheduler")) == []


def test_503_when_the_queue_is_unreachable(services, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("queue down")

    from shared.adapters.storage.aio_queues import AsyncQueueSender

    async def broken_async(*args, **kwargs):
        broken()

    monkeypatch.setattr(AsyncQueueSender, "send_many", broken_async)
    body = {"AppointmentGuid": "6c1b6a2e-1111-4c3d-9e8f-000000000001", "StartDate": "2026-11-25T08:00:00Z"}
    body["EndDate"] = "2026-11-25T09:00:00Z"
    assert publish(body, "created").status_code == 503


def test_basic_credentials_are_checked_when_configured(azurite, graph, dime, monkeypatch):
    from tests.conftest import clean_storage

    env = settings_env(
        azurite, graph.base_url, dime.base_url, DIME_WEBHOOK_USERNAME="dime", DIME_WEBHOOK_PASSWORD="p" * 20
    )
    services = make_services(env)
    clean_storage(services)
    monkeypatch.setattr(function_app, "services", lambda: services)
    body = {"AppointmentGuid": "6c1b6a2e-1111-4c3d-9e8f-000000000001"}
    good = "Basic " + base64.b64encode(b"dime:" + b"p" * 20).decode()
    bad = "Basic " + base64.b64encode(b"dime:" + b"q" * 20).decode()
    assert publish(body, "deleted").status_code == 401
    assert publish(body, "deleted", bad).status_code == 401
    assert publish(body, "deleted", "Basic %%%").status_code == 401
    assert list(services.store.transactions_of("dime-scheduler")) == []
    assert publish(body, "deleted", good).status_code == 200


def test_a_permanent_graph_failure_is_a_failed_retryable_transaction(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    graph.fail_next(1, status=403, path_contains="/events")
    publish(planned(dime, guid), "created")
    work(services)
    [failed] = list(services.store.transactions_of("dime-scheduler"))
    assert (failed.error_code, failed.payload["queue"]) == ("GRAPH_FORBIDDEN", PUBLICATIONS_QUEUE)
    assert ours(graph, people["jane"]["id"]) == []

    import asyncio

    from shared.usecases.retry import retry_transaction

    outcome = asyncio.run(retry_transaction(services, failed))
    assert outcome.transaction.status.value == "succeeded"
    assert len(ours(graph, people["jane"]["id"])) == 1


def test_throttled_graph_is_retried_by_the_queue_and_never_duplicates(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    graph.fail_next(2, status=503, path_contains="/events")
    publish(planned(dime, guid), "created")
    work(services)
    assert len(ours(graph, people["jane"]["id"])) == 1


# Reconcile -----------------------------------------------------------------------------------


def reconcile(services):
    import asyncio

    from shared.usecases.dime_to_outlook.reconcile import run_dime_reconcile

    return asyncio.run(run_dime_reconcile(services))


def near(days: int, hour: int) -> datetime:
    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    from datetime import timedelta

    return (today + timedelta(days=days)).replace(hour=hour)


@pytest.mark.parametrize("shape", ["pascal", "flat", "envelope"])
def test_reconcile_creates_missing_updates_stale_deletes_vanished(graph, dime, services, people, shape):
    dime.board.listing_shape = shape
    jane = people["jane"]["id"]
    kept = dime.board.plan("Kept", near(1, 8), near(1, 9), ["R-JANE"])
    moved = dime.board.plan("Moved", near(2, 8), near(2, 9), ["R-JANE"])
    gone = dime.board.plan("Gone", near(3, 8), near(3, 9), ["R-JANE"])
    for guid in (kept, moved, gone):
        publish(planned(dime, guid), "created")
    work(services)
    dime.board.update(moved, start=near(2, 14), end=near(2, 15))  # publications lost
    dime.board.delete(gone)
    missing = dime.board.plan("Never published", near(4, 8), near(4, 9), ["R-JANE", "R-TOM"])
    dime.board.outbox.clear()

    stats = reconcile(services)
    subjects = sorted(e["subject"] for e in ours(graph, jane))
    assert subjects == ["Kept", "Moved", "Never published"]
    [moved_event] = [e for e in ours(graph, jane) if e["subject"] == "Moved"]
    assert moved_event["start"]["dateTime"].startswith(near(2, 14).strftime("%Y-%m-%dT%H"))
    assert [e["subject"] for e in ours(graph, people["tom"]["id"])] == ["Never published"]
    assert (stats.created, stats.updated, stats.deleted, stats.unchanged) == (2, 1, 1, 1)
    assert missing in {t.appointment_guid for t in services.store.transactions_of(jane)}

    graph.reset_requests()
    again = reconcile(services)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    # An idle reconcile writes nothing and reads no event: one calendarView page per calendar (our tag
    # expanded), the orphan sweep's listing.
    assert [(r.method, "/calendar/calendarView" in r.path) for r in graph.requests] == [("GET", True)] * 2


def tagged_event(graph, mailbox: str, guid: str, resource: str, subject: str, start: datetime) -> dict:
    """An event carrying our tag that no row of ours names (what a lost create or a crash leaves)."""
    from datetime import timedelta

    return graph.create_event(
        mailbox,
        subject=subject,
        start=start,
        end=start + timedelta(hours=1),
        extended_properties={TAG_PROPERTY_ID: f"{guid}|{resource}"},
    )


def test_reconcile_deletes_every_event_of_ours_that_nothing_plans_there(graph, dime, services, people):
    """Issue 22 point 2: an event with our tag in the window that no current appointment plans for
    that person is deleted, with or without a link: a second copy of a planned appointment (no row
    names it), a copy in the calendar of someone the appointment is not planned for, one of an
    appointment that no longer exists. Kept: the planned event, a person's own event, our tag
    outside the window. The run record counts what was healed."""
    from shared.adapters.storage.syncstate_store import SyncStateStore
    from shared.core.runs import DIME_RECONCILE, DIME_SCHEDULER_SCOPE

    jane, tom = people["jane"]["id"], people["tom"]["id"]
    kept = dime.board.plan("Kept", near(1, 8), near(1, 9), ["R-JANE"])
    publish(planned(dime, kept), "created")
    work(services)
    tagged_event(graph, jane, kept, "R-JANE", "Kept (a lost create)", near(1, 8))
    tagged_event(graph, tom, kept, "R-TOM", "Kept (left with the previous assignee)", near(1, 8))
    tagged_event(graph, jane, "0b7c1a4e-0000-4000-8000-00000000dead", "R-JANE", "Long gone", near(5, 8))
    far = tagged_event(graph, jane, "0b7c1a4e-0000-4000-8000-00000000beef", "R-JANE", "Outside", near(400, 8))
    own = graph.create_event(jane, subject="Dentist", start=near(1, 14), end=near(1, 15))

    stats = reconcile(services)
    assert stats.healed == 3 and stats.deleted == 0 and not stats.held_back
    assert sorted(e["subject"] for e in ours(graph, jane)) == ["Kept", "Outside"]
    assert ours(graph, tom) == []
    assert graph.get_event(jane, own["id"]) is not None and graph.get_event(jane, far["id"]) is not None
    run = SyncStateStore(services.store).run(DIME_SCHEDULER_SCOPE, DIME_RECONCILE)
    assert run is not None and run["Healed"] == 3 and run["Deletes"] == 3
    reasons = [t.reason for who in (jane, tom) for t in services.store.transactions_of(who)]
    assert reasons.count("orphan") == 3

    again = reconcile(services)
    assert again.healed == 0 and sorted(e["subject"] for e in ours(graph, jane)) == ["Kept", "Outside"]


def test_orphan_sweep_goes_through_the_breaker(graph, dime, services, people):
    """Twenty events of ours in Jane's calendar that nothing plans (say, a tag copied by a tool):
    more than the breaker allows at once, so none is deleted and an alert is recorded."""
    jane = people["jane"]["id"]
    kept = dime.board.plan("Kept", near(1, 8), near(1, 9), ["R-JANE"])
    publish(planned(dime, kept), "created")
    work(services)
    for n in range(20):
        tagged_event(graph, jane, f"0b7c1a4e-0000-4000-8000-0000000000{n:02d}", "R-JANE", f"Stray {n}", near(2, 8))

    stats = reconcile(services)
    assert stats.healed == 0 and stats.held_back == {jane: 20}
    assert len(ours(graph, jane)) == 21
    alerts = [t for t in services.store.transactions_of(jane) if t.error_code == "CIRCUIT_BREAKER_TRIPPED"]
    assert len(alerts) == 1


def eight_visits_for_jane(dime, services) -> list[str]:
    """Eight appointments planned for Jane, published and placed in her calendar: their GUIDs."""
    guids = [dime.board.plan(f"Visit {n}", near(1, 6 + n), near(1, 7 + n), ["R-JANE"]) for n in range(8)]
    for guid in guids:
        publish(planned(dime, guid), "created")
    work(services)
    return guids


def test_reconcile_breaker_holds_back_a_mass_delete(graph, dime, services, people):
    jane = people["jane"]["id"]
    guids = eight_visits_for_jane(dime, services)
    for guid in guids:
        dime.board.delete(guid)
    dime.board.outbox.clear()
    stats = reconcile(services)
    assert stats.held_back == {jane: 8} and len(ours(graph, jane)) == 8
    alerts = [t for t in services.store.transactions_of(jane) if t.error_code == "CIRCUIT_BREAKER_TRIPPED"]
    assert len(alerts) == 1


@pytest.mark.parametrize("spoil", ["date", "guid"])
def test_reconcile_never_deletes_an_event_whose_appointment_it_could_not_read(
    graph, dime, services, people, spoil, monkeypatch
):
    """An appointment the listing carries but we cannot read (a date we do not understand, no
    GUID) did not vanish: missing means read it again, never delete its Outlook event."""
    jane = people["jane"]["id"]
    guids = [dime.board.plan(f"Visit {n}", near(1 + n, 8), near(1 + n, 9), ["R-JANE"]) for n in range(4)]
    for guid in guids:
        publish(planned(dime, guid), "created")
    work(services)
    from shared.adapters.dime_async import AsyncDimeGateway

    real = AsyncDimeGateway.list_appointments

    async def listing(client, *args):
        document = await real(client, *args)
        items = document if isinstance(document, list) else items_of(document)
        for item in items:
            if str(item.get("AppointmentGuid", "")).lower() == guids[0]:
                if spoil == "date":
                    item["StartDate"] = "next tuesday"
                else:
                    del item["AppointmentGuid"]
        return document

    monkeypatch.setattr(AsyncDimeGateway, "list_appointments", listing)
    stats = reconcile(services)
    assert stats.unreadable == 1 and stats.deleted == 0
    assert sorted(e["subject"] for e in ours(graph, jane)) == [f"Visit {n}" for n in range(4)]


def test_a_reconcile_reads_who_is_onboarded_once_however_many_it_places(graph, dime, services, people, monkeypatch):
    """The reconcile places its listing as one batch: the people onboarded here are read once per
    run (before: once for the run and once more for every appointment placed)."""
    from shared.usecases.dime_to_outlook.place_appointment import Mailboxes

    reads = []
    real = Mailboxes.read.__func__

    async def counted(cls, services):
        reads.append(1)
        return await real(cls, services)

    monkeypatch.setattr(Mailboxes, "read", classmethod(counted))
    for n in range(5):
        dime.board.plan(f"Visit {n}", near(1 + n, 8), near(1 + n, 9), ["R-JANE"])
    stats = reconcile(services)
    assert stats.created == 5 and len(ours(graph, people["jane"]["id"])) == 5
    assert len(reads) == 1


def test_reconcile_records_a_permanent_failure_as_a_failed_transaction(graph, dime, services, people):
    """A write the reconcile cannot make (Graph refuses it) is not only logged: it becomes a
    visible, retryable failed transaction, like a publication's."""
    guid = dime.board.plan("Visit", near(1, 8), near(1, 9), ["R-JANE"])  # never published
    graph.fail_next(1, status=403, path_contains="/events")
    stats = reconcile(services)
    assert stats.failed == 1
    [failed] = list(services.store.transactions_of("dime-scheduler"))
    assert (failed.status.value, failed.error_code, failed.appointment_guid) == ("failed", "GRAPH_FORBIDDEN", guid)
    assert ours(graph, people["jane"]["id"]) == []


def test_reconcile_fails_whole_when_the_listing_fails(graph, dime, services, people):
    from shared.core.transactions import SyncError

    guid = dime.board.plan("Visit", near(1, 8), near(1, 9), ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    dime.board.delete(guid)
    dime.fail_next(5, status=503)
    with pytest.raises(SyncError):
        reconcile(services)
    assert len(ours(graph, people["jane"]["id"])) == 1


def dime_reconcile_timer() -> None:
    from azure.functions.timer import TimerRequest

    from tests.host import call_function

    call_function(function_app.dime_reconcile_timer, TimerRequest(past_due=False))


def status_run() -> dict | None:
    answer = function_app.manage_status(func.HttpRequest("GET", "/api/manage/status", headers=MANAGE_HEADERS, body=b""))
    assert answer.status_code == 200
    return json.loads(answer.get_body())["dimeReconcile"]


def test_the_reconcile_timer_leaves_a_run_record_that_status_shows(graph, dime, services, people):
    """The timer's run record has the other direction's shape; its request figures are the ones the
    fakes saw (no SDK retries in these tests), so they could not come out right by accident."""
    assert status_run() is None  # no run yet: null, not a record of zeros
    kept = dime.board.plan("Kept", near(1, 8), near(1, 9), ["R-JANE"])
    moved = dime.board.plan("Moved", near(2, 8), near(2, 9), ["R-JANE"])
    gone = dime.board.plan("Gone", near(3, 8), near(3, 9), ["R-JANE"])
    for guid in (kept, moved, gone):
        publish(planned(dime, guid), "created")
    work(services)
    dime.board.update(moved, start=near(2, 14), end=near(2, 15))
    dime.board.delete(gone)
    dime.board.plan("New", near(4, 8), near(4, 9), ["R-JANE", "R-TOM"])
    dime.board.outbox.clear()
    graph.reset_requests()
    dime.reset_calls()

    dime_reconcile_timer()
    run = status_run()
    assert (run["rowKey"], run["kind"], run["outcome"], run["reason"]) == (
        "dime-reconcile-run",
        "dime-reconcile",
        "completed",
        "timer",
    )
    # listed: Kept, Moved, New; writes: New twice (Jane, Tom) + Moved; deletes: Gone; unchanged: Kept
    assert (run["changes"], run["writes"], run["deletes"], run["skipped"], run["errors"]) == (3, 3, 1, 1, 0)
    assert run["graphRequests"] == len(graph.requests) > 0
    assert run["dimeRequests"] == len(dime.requests) > 0
    assert run["breaker"] == "" and run["startedAt"].endswith("Z") and run["durationMs"] >= 0

    # A one-person backfill is logged, not recorded: the record stays the last pass over everyone.
    asyncio.run(run_dime_reconcile(services, only_emails={"tom@contoso.com"}))
    assert status_run()["startedAt"] == run["startedAt"]


def test_a_failed_read_and_a_tripped_breaker_are_the_record_s_outcome(graph, dime, services, people):
    from shared.core.transactions import SyncError

    jane = people["jane"]["id"]
    guids = eight_visits_for_jane(dime, services)
    dime.fail_next(1, status=503)  # Dime.Scheduler is down for the run's first read
    with pytest.raises(SyncError):
        dime_reconcile_timer()
    run = status_run()
    assert (run["outcome"], run["errors"], run["deletes"]) == ("failed", 1, 0)
    assert "DIME_UNAVAILABLE" in run["lastError"] or "503" in run["lastError"]

    for guid in guids:
        dime.board.delete(guid)
    dime.board.outbox.clear()
    dime_reconcile_timer()
    run = status_run()
    assert (run["outcome"], run["deletes"], run["changes"]) == ("breaker-tripped", 0, 0)
    assert run["breaker"].startswith(jane + ": ") and "8" in run["breaker"]
    assert len(ours(graph, jane)) == 8


def test_unmatched_lists_an_event_whose_appointment_was_deleted_but_not_yet_removed(graph, dime, services, people):
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    graph.fail_next(1, status=403, path_contains="/events/")
    publish({"AppointmentGuid": guid}, "deleted")
    work(services)
    import asyncio

    from shared.usecases.dime_to_outlook.unmatched import unmatched

    body = json.loads(asyncio.run(unmatched(services)).body)
    [item] = body["items"]
    assert (item["kind"], item["reason"], item["appointmentGuid"]) == ("outlook-event", "appointment-deleted", guid)
    [failed] = list(services.store.transactions_of("dime-scheduler"))
    assert failed.error_code == "GRAPH_FORBIDDEN"


@pytest.mark.parametrize("answer", ["existing", "conflict"])
def test_a_create_whose_link_was_lost_is_found_again_not_duplicated(graph, dime, services, people, answer):
    """A crash after Graph's create and before our links were saved: the replayed create carries the
    same transactionId; whether Graph answers with the event or with an error (unverified), the
    event is found again by its tag, linked, and never duplicated."""
    from shared.core.ids import encode_key
    from shared.names import EVENT_LINKS_TABLE, LINKS_TABLE

    graph.duplicate_create = answer
    jane = people["jane"]["id"]
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, jane)
    services.store.table(EVENT_LINKS_TABLE).delete_entity(guid, jane)
    services.store.table(LINKS_TABLE).delete_entity(jane, encode_key(event["id"]))
    dime.board.update(guid, subject="Visit (replayed)")
    publish(planned(dime, guid), "updated")
    work(services)
    [again] = ours(graph, jane)
    assert again["id"] == event["id"] and again["subject"] == "Visit (replayed)"
    assert services.store.get_link(jane, event["id"]).origin == "dime"


def test_a_publication_failing_every_delivery_is_poisoned_then_healed_by_the_retry_timer(graph, dime, services, people):
    from datetime import timedelta

    from shared.names import POISON_SUFFIX
    from shared.usecases.retry import retry_due

    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    graph.fail_next(100, status=503, path_contains="/events")
    publish(planned(dime, guid), "created")
    run = run_queue(services, PUBLICATIONS_QUEUE, function_app.apply_dime_publication)
    assert run.poisoned == 1
    poisoned = run_queue(services, PUBLICATIONS_QUEUE + POISON_SUFFIX, function_app.poisoned_publication)
    assert poisoned.succeeded == 1
    [failed] = list(services.store.transactions_of("dime-scheduler"))
    assert (failed.error_code, failed.direction) == ("GRAPH_UNAVAILABLE", "dime-to-outlook")
    assert failed.appointment_guid == guid
    assert failed.message.startswith("poisoned: the message failed all 5 deliveries")
    graph.clear_faults()
    later = services.clock() + timedelta(hours=1)
    services.clock = lambda: later
    import asyncio

    assert asyncio.run(retry_due(services))["succeeded"] == 1
    assert len(ours(graph, people["jane"]["id"])) == 1


def test_a_patch_that_lands_in_deleted_items_creates_the_event_again(graph, dime, services, people):
    """Issue 18 point 9: Jane deleted the planner's event (not notified yet); with immutable ids a
    PATCH of it may still succeed (FakeGraph deleted_patch_status=200). The planner moves the
    appointment: the patched event is not in the calendar, so it is created again."""
    graph.deleted_patch_status = 200
    jane = people["jane"]["id"]
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, jane)
    graph.delete_event(jane, event["id"])

    dime.board.update(guid, start=START.replace(hour=13), end=END.replace(hour=15))
    publish(planned(dime, guid), "updated")
    work(services)
    [again] = ours(graph, jane)
    assert again["id"] != event["id"] and again["start"]["dateTime"].startswith("2026-11-24T13:00:00")


def test_a_delete_answered_403_cannot_delete_object_means_already_gone(graph, dime, services, people):
    """Issue 18 point 9: a DELETE of an event already in Deleted Items may answer 403
    ErrorCannotDeleteObject (FakeGraph deleted_delete_status=403): the reassignment goes through,
    nothing is recorded as failed."""
    graph.deleted_delete_status = 403
    jane, tom = people["jane"]["id"], people["tom"]["id"]
    guid = dime.board.plan("Visit", START, END, ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, jane)
    graph.delete_event(jane, event["id"])

    dime.board.update(guid, resources=["R-TOM"])
    publish(planned(dime, guid), "updated")
    work(services)
    assert ours(graph, jane) == [] and [e["subject"] for e in ours(graph, tom)] == ["Visit"]
    failed = [t for t in services.store.transactions_of("dime-scheduler") if t.status.value == "failed"]
    assert failed == []


def test_reconcile_sweeps_every_calendar_we_wrote_to_also_one_no_longer_eligible(graph, dime, services, people):
    """Issue 18 point 5: the reconcile removes every event we wrote that the planner did not plan
    for that person. Jane's Exchange integration is switched off in Dime.Scheduler: her resource is
    no longer listed (nor her appointment, planned for her alone), but her calendar holds rows of
    ours, so it is swept and her event goes; Tom's appointment stays."""
    jane, tom = people["jane"]["id"], people["tom"]["id"]
    guid = dime.board.plan("Visit", near(1, 8), near(1, 9), ["R-JANE"])
    publish(planned(dime, guid), "created")
    toms = dime.board.plan("Visit", near(2, 8), near(2, 9), ["R-TOM"])
    publish(planned(dime, toms), "created")
    work(services)
    assert len(ours(graph, jane)) == 1 and len(ours(graph, tom)) == 1
    dime.board.add_resource("R-JANE", "jane@contoso.com", exchange_enabled=False)
    from shared.usecases.dime_to_outlook.place_appointment import directory_of

    directory_of(services).loaded_at = float("-inf")  # the cached GET /resource has expired

    stats = reconcile(services)
    assert ours(graph, jane) == [] and [e["subject"] for e in ours(graph, tom)] == ["Visit"]
    assert stats.deleted + stats.healed == 1


@pytest.mark.parametrize("edits", ["revert", "keep"])
def test_reconcile_places_again_an_event_the_calendar_lost(azurite, graph, dime, people, monkeypatch, edits):
    """Healing the other way (issue 22, seed 68211 of the three-process soak): the row names an
    event the calendar no longer holds (a deletion whose notification never came, or a create an
    instance that lost a race undid). Under revert the reconcile places the planner's version again,
    once; under keep a missing event may be the person's wish and stays away."""
    services = services_with(azurite, graph, dime, monkeypatch, people, DIME_OUTLOOK_EDITS=edits)
    jane = people["jane"]["id"]
    guid = dime.board.plan("Visit", near(1, 8), near(1, 9), ["R-JANE"])
    publish(planned(dime, guid), "created")
    work(services)
    [event] = ours(graph, jane)
    graph.delete_event(jane, event["id"])  # no notification reaches the app

    stats = reconcile(services)
    if edits == "keep":
        assert ours(graph, jane) == [] and stats.healed == 0
        return
    [again] = ours(graph, jane)
    assert again["id"] != event["id"] and again["subject"] == "Visit" and stats.healed == 1
    assert reconcile(services).healed == 0 and [e["id"] for e in ours(graph, jane)] == [again["id"]]
