"""The resources admin API through the real functions, FakeGraph's real handshake and Azurite."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app
from shared.adapters.storage.subscription_rows import get_subscription, subscriptions_of, was_removed
from shared.core.consent import SHOW_AS_VALUES
from shared.core.outlook_to_dime.appointments import DELETE_PROCEDURE
from shared.names import ADMIN_ROUTE_PREFIX, NOTIFICATIONS_QUEUE, RESYNC_QUEUE
from shared.usecases.http_answer import HttpAnswer
from shared.usecases.outlook_to_dime import webhook as webhook_usecase
from tests.conftest import DIME_PUBLICATIONS_KEY, MANAGE_HEADERS, drain_queue, notification_item
from tests.e2e.live import admin, subscription_writes, validations, wire
from tests.functions_server import FunctionsServer
from tests.host import call_function, run_queue


@pytest.fixture
def server():
    with FunctionsServer() as running:
        yield running


@pytest.fixture
def services(azurite, graph, dime, monkeypatch, server):
    return wire(azurite, graph, dime, monkeypatch, server)


def test_onboarding_five_mailboxes_makes_five_subscriptions_after_ten_handshakes(graph, services, server):
    people = [graph.add_user(mail=f"p{i}@contoso.com", upn=f"p{i}@contoso.onmicrosoft.com") for i in range(5)]

    answers = [admin("PUT", p["userPrincipalName"]) for p in people]

    assert [status for status, _ in answers] == [201] * 5
    subscriptions = graph.subscriptions()
    assert len(subscriptions) == 5
    assert {s["resource"] for s in subscriptions} == {f"/users/{p['id']}/events" for p in people}
    # Each creation validated the notification URL and the lifecycle URL through the real functions.
    assert len(validations(graph)) == 10 and all(d.status == 200 for d in validations(graph))
    assert sorted(route for route, _ in server.calls) == ["lifecycle"] * 5 + ["notifications"] * 5
    for person, (_, body) in zip(people, answers, strict=True):
        sub_id = body["subscription"]["id"]
        assert body["id"] == person["id"] and body["email"] == person["mail"] and body["enabled"] is True
        assert get_subscription(services.store, sub_id).mailbox_id == person["id"]
        assert graph.subscription_used_immutable_ids(sub_id)
        assert services.store.get_resource(person["id"]).subscription_id == sub_id
    created = {s["id"]: s for s in subscriptions}
    sample = created[answers[0][1]["subscription"]["id"]]
    assert sample["changeType"] == "created,updated,deleted"
    assert sample["notificationUrl"] == services.settings.notification_url
    assert sample["lifecycleNotificationUrl"] == services.settings.lifecycle_notification_url
    resyncs = drain_queue(services, RESYNC_QUEUE)
    assert sorted(m["mailboxId"] for m in resyncs) == sorted(p["id"] for p in people)
    assert {m["reason"] for m in resyncs} == {"onboarded"}


def test_put_by_object_id_with_overrides_and_again_is_idempotent(graph, services):
    person = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    body = {"email": "Jane.Planner@contoso.com", "showAs": ["busy", "OOF"], "sensitivities": "normal"}

    status, first = admin("PUT", person["id"], body)
    status_again, again = admin("PUT", person["id"], body)

    assert (status, status_again) == (201, 200)
    assert first["email"] == "Jane.Planner@contoso.com" and first["upn"] == "jane@contoso.onmicrosoft.com"
    assert first["showAs"] == ["busy", "oof"] and first["sensitivities"] == ["normal"]
    assert again["subscription"] == first["subscription"]
    assert subscription_writes(graph)["create"] == 1 and len(graph.subscriptions()) == 1


def test_get_list_and_one_by_upn(graph, services):
    person = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    admin("PUT", person["userPrincipalName"])

    status, listing = admin("GET")
    status_one, one = admin("GET", "JANE@contoso.onmicrosoft.com")

    assert status == 200 and [r["id"] for r in listing["items"]] == [person["id"]]
    assert "continuationToken" not in listing  # the one list shape: absent on the last page
    assert status_one == 200 and one == listing["items"][0]
    assert admin("GET", "nobody@contoso.com")[0] == 404


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    ({"showAs": ["busy", "away"]}, "allowed: " + ", ".join(SHOW_AS_VALUES)),
    ({"sensitivities": ["secret"]}, "allowed: normal, personal, private, confidential"),
    ({"enabled": "yes"}, "enabled must be true or false"),
    ({"email": "not-an-address"}, "email must be an e-mail address"),
    ({"colour": "red"}, "unknown field 'colour'"),
]


def test_bad_input_is_400_with_a_reason_and_calls_nothing(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    graph.reset_requests()
    for method in ("PUT", "PATCH"):
        for body, reason in BAD_BODIES:
            status, answer = admin(method, person["id"], body)
            assert status == 400 and reason in answer["error"], (method, body, answer)
    assert graph.requests == [] and services.store.get_resource(person["id"]) is None


def test_bad_mailbox_and_bad_flag_are_400(graph, services):
    assert admin("PUT", "no spaces allowed")[0] == 400
    person = graph.add_user(mail="jane@contoso.com")
    admin("PUT", person["id"])
    status, answer = admin("DELETE", person["id"], removeAppointments="maybe")
    assert status == 400 and "removeAppointments" in answer["error"]


def test_unknown_mailbox_is_404_with_a_reason(graph, services):
    status, answer = admin("PUT", "ghost@contoso.com")
    assert status == 404 and "ghost@contoso.com" in answer["error"]
    assert graph.subscriptions() == []
    assert admin("PATCH", "ghost@contoso.com", {"enabled": False})[0] == 404
    assert admin("DELETE", "ghost@contoso.com")[0] == 404


def test_a_wrong_handshake_answer_fails_visibly_and_stores_nothing(graph, services, monkeypatch):
    person = graph.add_user(mail="jane@contoso.com")
    monkeypatch.setattr(
        function_app, "receive_notifications", lambda body, token, get: HttpAnswer(200, "wrong " + (token or ""))
    )

    status, answer = admin("PUT", person["id"])

    assert status == 400 and "ValidationError" in answer["error"]
    assert graph.subscriptions() == []
    assert validations(graph) and validations(graph)[0].status == 200  # answered, but not the token
    assert services.store.get_resource(person["id"]) is None
    assert subscriptions_of(services.store, person["id"]) == []
    assert drain_queue(services, RESYNC_QUEUE) == []


def test_handshake_answered_as_html_is_refused(graph, services, monkeypatch):
    person = graph.add_user(mail="jane@contoso.com")
    original = webhook_usecase.receive_notifications

    def as_html(body, token, get):
        answer = original(body, token, get)
        return HttpAnswer(answer.status, answer.body, "text/html")

    monkeypatch.setattr(function_app, "receive_notifications", as_html)
    assert admin("PUT", person["id"])[0] == 400
    assert graph.subscriptions() == []


def test_graph_503_mid_onboarding_leaves_nothing_behind(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    graph.fail_next(1, status=503, path_contains="/subscriptions")

    status, answer = admin("PUT", person["id"])

    assert status == 503 and "try again later" in answer["error"]
    assert services.store.get_resource(person["id"]) is None
    assert subscriptions_of(services.store, person["id"]) == []
    assert admin("PUT", person["id"])[0] == 201  # and a retry simply works
    assert len(graph.subscriptions()) == 1


def test_graph_failure_on_user_lookup_is_503(graph, services):
    graph.fail_next(1, status=503, path_contains="/users/")
    status, answer = admin("PUT", "jane@contoso.com")
    assert status == 503 and "Graph" in answer["error"]


def test_disable_removes_the_subscription_and_enable_creates_one(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    _, first = admin("PUT", person["id"])
    drain_queue(services, RESYNC_QUEUE)

    status, disabled = admin("PATCH", person["id"], {"enabled": False})
    assert status == 200 and disabled["enabled"] is False and disabled["subscription"] is None
    assert graph.subscriptions() == []
    assert get_subscription(services.store, first["subscription"]["id"]) is None
    assert [m["reason"] for m in drain_queue(services, RESYNC_QUEUE)] == ["disabled"]

    status, enabled = admin("PATCH", person["id"], {"enabled": True})
    assert status == 200 and enabled["subscription"]["id"] != first["subscription"]["id"]
    assert [s["id"] for s in graph.subscriptions()] == [enabled["subscription"]["id"]]
    assert [m["reason"] for m in drain_queue(services, RESYNC_QUEUE)] == ["onboarded"]


def test_put_disabled_creates_no_subscription(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    status, body = admin("PUT", person["id"], {"enabled": False})
    assert status == 201 and body["enabled"] is False and body["subscription"] is None
    assert subscription_writes(graph)["create"] == 0


def test_consent_change_requests_a_resync_without_touching_the_subscription(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    admin("PUT", person["id"])
    drain_queue(services, RESYNC_QUEUE)
    graph.reset_requests()

    status, body = admin("PATCH", person["id"], {"showAs": ["busy"]})

    assert status == 200 and body["showAs"] == ["busy"]
    assert graph.requests == []
    assert drain_queue(services, RESYNC_QUEUE) == [{"mailboxId": person["id"], "reason": "consentChanged"}]


def test_delete_with_remove_appointments_deletes_our_appointments_and_links(graph, dime, services):
    person = graph.add_user(mail="jane@contoso.com")
    _, onboarded = admin("PUT", person["id"])
    events = [graph.create_event(person["id"], subject=f"Visit {i}") for i in range(3)]
    for event in events:
        item = notification_item(person["id"], event["id"], "created", event["changeKey"])
        item["subscriptionId"] = onboarded["subscription"]["id"]
        body = json.dumps({"value": [item]})
        function_app.notifications(function_app.func.HttpRequest("POST", "/api/notifications", body=body.encode()))
    assert run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change).succeeded == 3
    assert len(dime.appointments) == 3
    dime.reset_calls()

    status, answer = admin("DELETE", person["userPrincipalName"], removeAppointments="true")

    assert status == 200 and answer == {"deleted": person["id"], "appointmentsRemoved": 3}
    assert len([c for c in dime.calls if c[0] == DELETE_PROCEDURE]) == 3 and dime.appointments == {}
    assert list(services.store.links_of(person["id"])) == []
    assert services.store.get_resource(person["id"]) is None and graph.subscriptions() == []
    assert was_removed(services.store, person["id"])


def test_delete_without_flag_keeps_appointments(graph, dime, services):
    person = graph.add_user(mail="jane@contoso.com")
    admin("PUT", person["id"])
    status, answer = admin("DELETE", person["id"])
    assert status == 200 and answer["appointmentsRemoved"] == 0
    assert dime.calls == [] and graph.subscriptions() == []


def test_a_late_notification_for_a_deleted_mailbox_is_dropped_not_recreated(graph, dime, services):
    person = graph.add_user(mail="jane@contoso.com")
    _, body = admin("PUT", person["id"])
    event = graph.create_event(person["id"])
    admin("DELETE", person["id"])
    item = notification_item(person["id"], event["id"], "created", event["changeKey"])
    item["subscriptionId"] = body["subscription"]["id"]  # the subscription we just deleted
    payload = json.dumps({"value": [item]}).encode()

    function_app.notifications(function_app.func.HttpRequest("POST", "/api/notifications", body=payload))
    run = run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)

    assert run.succeeded == 0  # the webhook dropped it: the subscription is no longer ours
    assert services.store.get_resource(person["id"]) is None
    assert dime.calls == []


def test_onboarding_again_after_delete_works(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    admin("PUT", person["id"])
    admin("DELETE", person["id"])
    assert admin("PUT", person["id"])[0] == 201
    assert not was_removed(services.store, person["id"]) and len(graph.subscriptions()) == 1


# {mailbox} resolution, disabling, unknown input (issue: management API correctness) ---------------


def onboard_with_appointments(graph, services, mail: str, upn: str, count: int = 2):
    person = graph.add_user(mail=mail, upn=upn)
    admin("PUT", person["id"])
    for i in range(count):
        day = f"2026-11-2{4 + i}"
        graph.create_event(person["id"], subject=f"Visit {i}", start=f"{day}T09:00:00", end=f"{day}T10:00:00")
    run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)  # the onboarding backfill
    return person


def test_an_email_several_people_share_is_ambiguous_and_nobody_is_touched(graph, services):
    ann = graph.add_user(mail="desk@contoso.com", upn="ann@contoso.onmicrosoft.com")
    bob = graph.add_user(mail="desk@contoso.com", upn="bob@contoso.onmicrosoft.com")
    admin("PUT", ann["id"])
    admin("PUT", bob["id"])

    for method, body in (("PATCH", {"enabled": False}), ("DELETE", None), ("GET", None)):
        status, answer = admin(method, "desk@contoso.com", body)
        assert status == 409 and "several" in answer["error"], method
    assert all(services.store.get_resource(p["id"]).consent.enabled for p in (ann, bob))
    status, answer = admin("PATCH", "bob@contoso.onmicrosoft.com", {"showAs": ["busy"]})  # exact UPN
    assert status == 200 and answer["id"] == bob["id"]


def test_the_exact_upn_wins_over_someone_elses_email(graph, services):
    ann = graph.add_user(mail="ann@contoso.com", upn="ann@contoso.onmicrosoft.com")
    bob = graph.add_user(mail="ann@contoso.onmicrosoft.com", upn="bob@contoso.onmicrosoft.com")
    admin("PUT", ann["id"])
    admin("PUT", bob["id"])
    status, answer = admin("GET", "ann@contoso.onmicrosoft.com")
    assert status == 200 and answer["id"] == ann["id"]


def test_an_override_email_that_another_person_uses_is_refused(graph, services):
    ann = graph.add_user(mail="ann@contoso.com")
    bob = graph.add_user(mail="bob@contoso.com")
    admin("PUT", ann["id"])
    admin("PUT", bob["id"])

    status, answer = admin("PATCH", bob["id"], {"email": "ANN@contoso.com"})
    assert status == 409 and ann["id"] in answer["error"]
    assert admin("PUT", bob["id"], {"email": "ann@contoso.com"})[0] == 409
    assert services.store.get_resource(bob["id"]).email == "bob@contoso.com"
    assert admin("PATCH", bob["id"], {"email": "bob.field@contoso.com"})[0] == 200


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_disabling_a_person_removes_their_appointments_at_once(graph, dime, services, method):
    person = onboard_with_appointments(graph, services, "jane@contoso.com", "jane@contoso.onmicrosoft.com")
    assert len(dime.appointments) == 2

    status, _ = admin(method, person["userPrincipalName"], {"enabled": False})
    assert status == 200
    run = run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)

    assert run.succeeded == 1 and dime.appointments == {}
    assert list(services.store.links_of(person["id"])) == []


def test_the_resync_route_accepts_a_upn_like_every_mailbox_route(graph, services):
    person = graph.add_user(mail="jane@contoso.com", upn="jane@contoso.onmicrosoft.com")
    admin("PUT", person["id"])
    drain_queue(services, RESYNC_QUEUE)

    def resync(mailbox: str, **params: str):
        request = function_app.func.HttpRequest(
            "POST",
            f"/api/manage/resources/{mailbox}/resync",
            params=params,
            route_params={"mailbox": mailbox},
            headers=MANAGE_HEADERS,
            body=b"",
        )
        response = call_function(function_app.manage_resource_resync, request)
        return response.status_code, json.loads(response.get_body())

    status, body = resync("Jane@contoso.onmicrosoft.com")
    assert status == 202 and body["mailboxId"] == person["id"]
    assert resync("jane@contoso.com")[0] == 202  # an unambiguous e-mail too
    assert resync("nobody@contoso.com")[0] == 404
    assert resync(person["id"], force="true")[0] == 400
    assert [m["mailboxId"] for m in drain_queue(services, RESYNC_QUEUE)] == [person["id"]] * 2


def test_unknown_query_parameters_are_400_and_nothing_happens(graph, services):
    person = graph.add_user(mail="jane@contoso.com")
    admin("PUT", person["id"])

    status, answer = admin("DELETE", person["id"], removeAppointment="true")  # typo
    assert status == 400 and "removeAppointment" in answer["error"]
    assert services.store.get_resource(person["id"]) is not None
    assert admin("GET", None, enabled="false")[0] == 400
    assert admin("GET", person["id"], verbose="1")[0] == 400
    assert admin("PATCH", person["id"], {"enabled": False}, dryRun="true")[0] == 400
    assert services.store.get_resource(person["id"]).consent.enabled
    assert admin("GET", person["id"], code="the-host-key")[0] == 200  # the host's own ?code= is fine


# Onboarding completes the Dime.Scheduler → Outlook picture -----------------------------------


def _publish_and_work(services, body: dict) -> None:
    from shared.names import PUBLICATIONS_QUEUE

    request = func.HttpRequest(
        "POST",
        "/api/dime/publications/created",
        body=json.dumps(body).encode(),
        route_params={"change": "created"},
        params={"code": DIME_PUBLICATIONS_KEY},
    )
    assert call_function(function_app.dime_publications_change, request).status_code == 200
    assert run_queue(services, PUBLICATIONS_QUEUE, function_app.apply_dime_publication).poisoned == 0


def _unmatched() -> list[tuple[str, str]]:
    request = func.HttpRequest("GET", f"/api/{ADMIN_ROUTE_PREFIX}/unmatched", headers=MANAGE_HEADERS, body=b"")
    answer = call_function(function_app.manage_unmatched, request)
    assert answer.status_code == 200
    return [(i["resource"], i["reason"]) for i in json.loads(answer.get_body())["items"]]


@pytest.mark.parametrize("targets", ["onboarded", "directory"])
def test_onboarding_places_the_planner_s_appointments_at_once_and_clears_unmatched(
    azurite, graph, dime, monkeypatch, server, targets
):
    """As a new user tries it: plan for R-FINN, see him unmatched, onboard finn@: his calendar
    holds the planner's appointment as soon as the onboarding resync has run (not after the
    nightly reconcile), and the unmatched report no longer lists him. Under `directory`, Finn's
    mailbox did not exist yet when the plan was published (a cached "no mailbox" answer)."""
    from datetime import UTC, datetime, timedelta

    services = wire(azurite, graph, dime, monkeypatch, server, DIME_OUTLOOK_TARGETS=targets)
    dime.board.add_resource("R-FINN", "finn@contoso.com")
    if targets == "onboarded":
        graph.add_user(mail="finn@contoso.com")
    tomorrow = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
    guid = dime.board.plan("Boiler service", tomorrow, tomorrow + timedelta(hours=2), ["R-FINN"])
    _publish_and_work(services, dime.board.payload(dime.board.appointments[guid]))
    assert _unmatched() == [("R-FINN", "not-onboarded" if targets == "onboarded" else "no-mailbox")]

    finn = graph.add_user(mail="finn@contoso.com") if targets == "directory" else None
    status, body = admin("PUT", "finn@contoso.com")
    assert status == 201
    finn_id = body["id"]
    assert finn is None or finn["id"] == finn_id
    assert graph.events(finn_id) == []
    run = run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)
    assert run.poisoned == 0 and run.succeeded >= 1, run.errors

    [event] = graph.events(finn_id)
    assert event["subject"] == "Boiler service"
    assert _unmatched() == []


def _plan_for(dime, number: str) -> str:
    from datetime import UTC, datetime, timedelta

    tomorrow = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return dime.board.plan("Boiler service", tomorrow, tomorrow + timedelta(hours=2), [number])


def test_someone_onboarded_disabled_still_gets_the_planner_s_appointments_at_once(graph, dime, services):
    """`enabled: false` turns Outlook → Dime.Scheduler off, not the planner's appointments."""
    dime.board.add_resource("R-DAN", "dan@contoso.com")
    dan = graph.add_user(mail="dan@contoso.com")
    guid = _plan_for(dime, "R-DAN")
    _publish_and_work(services, dime.board.payload(dime.board.appointments[guid]))
    assert _unmatched() == [("R-DAN", "not-onboarded")]

    assert admin("PUT", "dan@contoso.com", {"enabled": False})[0] == 201
    assert [m["reason"] for m in drain_queue(services, RESYNC_QUEUE)] == ["onboarded"]
    services.queues.send(RESYNC_QUEUE, {"mailboxId": dan["id"], "reason": "onboarded"})
    run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)
    assert [e["subject"] for e in graph.events(dan["id"])] == ["Boiler service"] and _unmatched() == []


def test_correcting_a_person_s_email_places_the_planner_s_appointments_at_once(graph, dime, services):
    """Onboarded with the mail Graph has, while Dime.Scheduler's record holds another address:
    `not-onboarded` until the administrator PATCHes the Dime.Scheduler e-mail; then at once."""
    dime.board.add_resource("R-FINN", "f.berg@contoso.com")
    finn = graph.add_user(mail="finn@contoso.com")
    assert admin("PUT", "finn@contoso.com")[0] == 201
    run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)
    guid = _plan_for(dime, "R-FINN")
    _publish_and_work(services, dime.board.payload(dime.board.appointments[guid]))
    assert graph.events(finn["id"]) == [] and _unmatched() == [("R-FINN", "not-onboarded")]

    assert admin("PATCH", finn["id"], {"email": "f.berg@contoso.com"})[0] == 200
    run_queue(services, RESYNC_QUEUE, function_app.resync_mailbox)
    assert [e["subject"] for e in graph.events(finn["id"])] == ["Boiler service"] and _unmatched() == []


def test_onboarding_keeps_the_directorys_display_name_and_a_second_put_refreshes_it(graph, services):
    """Issue 19: the console names people; Graph's displayName is read with the user at onboarding
    (no Graph call when a page is drawn), and onboarding again picks up a rename."""
    person = graph.add_user(mail="jane@contoso.com", display_name="Jane Doe")
    status, body = admin("PUT", person["id"])
    assert status == 201 and body["displayName"] == "Jane Doe"
    assert services.store.get_resource(person["id"]).display_name == "Jane Doe"
    graph._users[person["id"]]["displayName"] = "Jane Smith"  # renamed in the directory
    status, body = admin("PUT", person["id"])
    assert status == 200 and body["displayName"] == "Jane Smith"


# The onboarding mail (ONBOARDING_MAIL_FROM) ------------------------------------------------------


def test_onboarding_mails_the_person_the_link_to_their_own_page_when_configured(graph, services):
    from dataclasses import replace

    noreply = graph.add_user(mail="noreply@contoso.com", upn="noreply@contoso.com")
    jane = graph.add_user(mail="jane@contoso.com")
    assert admin("PUT", jane["id"])[1]["onboardingMail"] == "off" and graph.sent_mail == []  # off unless set

    services.settings = replace(services.settings, onboarding_mail_from="noreply@contoso.com")
    john = graph.add_user(mail="john@contoso.com")
    status, body = admin("PUT", john["id"])
    assert status == 201 and body["onboardingMail"] == "sent"
    [(sender, sent)] = graph.sent_mail
    assert sender == noreply["id"]
    text = sent["message"]["body"]["content"]
    assert sent["message"]["toRecipients"] == [{"emailAddress": {"address": "john@contoso.com"}}]
    assert sent["message"]["body"]["contentType"] == "Text" and sent["saveToSentItems"] is False
    host = services.settings.notification_url.split("/api/")[0]
    assert f"{host}/api/console/#/me" in text and "code=" not in text  # the function key stays out
    assert "onboardingMail" not in admin("PUT", john["id"])[1] and len(graph.sent_mail) == 1  # once

    services.settings = replace(services.settings, onboarding_mail_from="nobody@contoso.com")
    ann = graph.add_user(mail="ann@contoso.com")
    status, body = admin("PUT", ann["id"])
    assert status == 201 and body["onboardingMail"].startswith("failed: ")  # onboarded all the same
    assert services.store.get_resource(ann["id"]) is not None
