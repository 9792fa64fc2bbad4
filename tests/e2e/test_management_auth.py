"""Who may use the management routes and each person's own page, against Azurite and the fakes.

* Every route under /api/manage (enumerated from function_app, so a future route cannot forget the
  guard) refuses a request with neither the management key nor a signed-in Connector.Admin, also
  with a forged X-MS-CLIENT-PRINCIPAL when App Service Authentication is off, and touches no state.
* /api/me shows a signed-in person only their own settings, refuses fields an administrator locked,
  and takes effect as an administrator's change does (a resync).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

import function_app
from shared.core.principal import ADMIN_ROLE
from shared.names import ADMIN_ROUTE_PREFIX, RESYNC_QUEUE
from shared.services import Services
from tests.conftest import MANAGE_HEADERS, MANAGEMENT_KEY, drain_queue, track
from tests.e2e.live import admin
from tests.host import call_function
from tests.unit.test_function_app import indexed_functions
from tests.unit.test_principal import principal_header


class Untouchable:
    """Any attribute read fails the test: a refusal must touch no storage, Graph or queue."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a refused request touched state ({name})")


def management_routes() -> list[tuple[Any, str, list[str]]]:
    """(user function, route template, methods) of every HTTP function under the manage prefix."""
    found = []
    for function in indexed_functions():
        trigger = function.get_trigger()
        if trigger.type == "httpTrigger" and trigger.route.startswith(ADMIN_ROUTE_PREFIX + "/"):
            methods = [str(getattr(m, "value", m)).upper() for m in trigger.methods]
            found.append((function.get_user_function(), trigger.route, methods))
    return found


def call(function: Any, route: str, method: str, headers: dict[str, str], params: dict | None = None) -> Any:
    route_params = {name: "x" for name in re.findall(r"\{\*?(\w+)", route)}
    request = func.HttpRequest(
        method, f"/api/{route}", headers=headers, params=params or {}, route_params=route_params, body=b"{}"
    )
    return call_function(function, request)


@pytest.fixture
def untouchable(monkeypatch) -> Services:
    from shared.settings import load_settings
    from tests.conftest import settings_env

    class FakeAzurite:
        connection_string = "UseDevelopmentStorage=true"

    settings = load_settings(settings_env(FakeAzurite(), "https://graph.microsoft.com/v1.0", "https://dime.invalid"))
    adapters = ("store", "queues", "graph", "dime", "astore", "aqueues", "adime")  # the async ones too
    built = Services(settings, **{name: Untouchable() for name in adapters})
    monkeypatch.setattr(function_app, "services", lambda: built)
    return built


def test_there_are_management_routes_and_all_are_anonymous_to_the_host():
    routes = management_routes()
    assert len(routes) >= 15
    for function in indexed_functions():
        trigger = function.get_trigger()
        if trigger.type == "httpTrigger" and trigger.route.startswith(ADMIN_ROUTE_PREFIX + "/"):
            # the host's admin level would take the master key, and only it: the guard decides instead
            assert str(getattr(trigger.auth_level, "value", trigger.auth_level)).lower() == "anonymous", trigger.route


@pytest.mark.parametrize("auth_on", [False, True], ids=["auth off", "auth on"])
def test_every_management_route_refuses_a_request_without_key_or_role(untouchable, auth_on):
    untouchable.settings = replace(untouchable.settings, app_service_auth=auth_on)
    forged_admin = {"X-MS-CLIENT-PRINCIPAL": principal_header(ADMIN_ROLE)}
    person = {"x-ms-client-principal": principal_header("Reader")}
    for function, route, methods in management_routes():
        for method in methods:
            assert call(function, route, method, {}).status_code == 401, (route, method)
            assert call(function, route, method, {"x-functions-key": "the-host-key"}).status_code == 401
            assert call(function, route, method, {}, {"code": "master-key"}).status_code == 401
            assert call(function, route, method, {"x-ms-client-principal": "%%%"}).status_code == 401
            if auth_on:
                assert call(function, route, method, person).status_code == 403, (route, method)
            else:  # the header is a caller's own text: ignored entirely, whatever it claims
                assert call(function, route, method, forged_admin).status_code == 401, (route, method)
                assert call(function, route, method, person).status_code == 401


def test_refusals_are_logged_as_one_aggregated_line(untouchable, caplog, monkeypatch):
    from shared.usecases.admin import access
    from shared.usecases.dime_to_outlook.inbound import RefusalLog

    monkeypatch.setattr(access, "REFUSALS", RefusalLog(what="management request(s)", logger=access.log))
    function, route, methods = management_routes()[0]
    with caplog.at_level("WARNING", logger="shared.usecases.admin.access"):
        for _ in range(50):
            call(function, route, methods[0], {})
    lines = [r for r in caplog.records if r.name == "shared.usecases.admin.access"]
    assert len(lines) == 1 and "refused 1 management request" in lines[0].getMessage()


def test_the_key_and_an_admin_principal_open_the_routes(services):
    status = function_app.manage_status
    assert call(status, "manage/status", "GET", MANAGE_HEADERS).status_code == 200
    assert call(status, "manage/status", "GET", {}, {"code": MANAGEMENT_KEY}).status_code == 200
    admin_header = {"x-ms-client-principal": principal_header(ADMIN_ROLE)}
    assert call(status, "manage/status", "GET", admin_header).status_code == 401  # auth off: not trusted
    services.settings = replace(services.settings, app_service_auth=True)
    assert call(status, "manage/status", "GET", admin_header).status_code == 200
    answer = call(function_app.manage_resources_list, "manage/resources", "GET", admin_header)
    assert answer.status_code == 200 and json.loads(answer.get_body())["items"] == []


def test_the_management_key_previous_is_accepted_during_a_rotation(services):
    previous = "previous-management-key-0123456789abcdef"
    services.settings = replace(services.settings, management_keys=("new-management-key-0123456789abcdef-0", previous))
    status = function_app.manage_status
    assert call(status, "manage/status", "GET", {"x-functions-key": previous}).status_code == 200
    assert call(status, "manage/status", "GET", MANAGE_HEADERS).status_code == 401  # the old-old one


# Each person's own page ------------------------------------------------------------------------


def me(method: str, who: str | None, body: Any = None, route: str = "me", same_origin: bool = True) -> tuple[int, Any]:
    headers = {"x-ms-client-principal": who} if who else {}
    if same_origin:
        headers["X-Requested-With"] = "console"  # what the console sends with every call
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    function = {"me": function_app.my_consent, "me/preview": function_app.my_consent_preview}[route]
    response = call_function(function, func.HttpRequest(method, f"/api/{route}", headers=headers, body=raw))
    text = response.get_body().decode()
    return response.status_code, json.loads(text) if text else None


@pytest.fixture
def people(graph, services):
    jane = graph.add_user(mail="jane@contoso.com", display_name="Jane")
    john = graph.add_user(mail="john@contoso.com", display_name="John")
    track(services, jane)  # onboarded straight into the tables (tenant defaults)
    track(services, john)
    services.settings = replace(services.settings, app_service_auth=True)
    return {
        "jane": (jane, principal_header(oid=jane["id"])),
        "john": (john, principal_header(oid=john["id"])),
    }


def test_a_person_sees_only_their_own_settings(people, services):
    (jane, jane_p), (john, john_p) = people["jane"], people["john"]
    status, mine = me("GET", jane_p)
    assert status == 200 and mine["id"] == jane["id"] and mine["upn"] == jane["userPrincipalName"]
    assert mine["locked"] == [] and "subscription" not in mine
    assert me("GET", john_p)[1]["id"] == john["id"]
    # another's id cannot be named: not in the body, not in the path
    status, answer = me("PATCH", jane_p, {"id": john["id"], "enabled": False})
    assert status == 400 and "unknown field 'id'" in answer["error"]
    assert me("PATCH", jane_p, {"email": "john@contoso.com"})[0] == 400
    assert me("PATCH", jane_p, {"locked": []})[0] == 400  # unlocking is an administrator's
    assert services.store.get_resource(john["id"]).consent.enabled


def test_a_person_changes_their_consent_and_it_takes_effect_with_a_resync(people, services):
    jane, jane_p = people["jane"]
    status, mine = me("PATCH", jane_p, {"showAs": ["busy", "oof"], "sensitivities": ["normal"]})
    assert status == 200 and mine["showAs"] == ["busy", "oof"] and mine["sensitivities"] == ["normal"]
    stored = services.store.get_resource(jane["id"])
    assert stored.consent.show_as == {"busy", "oof"} and stored.locked == frozenset()
    assert [m["mailboxId"] for m in drain_queue(services, RESYNC_QUEUE)] == [jane["id"]]
    status, answer = me("PATCH", jane_p, {"showAs": ["away"]})
    assert status == 400 and "unknown show-as value" in answer["error"]


def test_an_administrators_override_locks_the_field(people, services):
    jane, jane_p = people["jane"]
    assert admin("PATCH", jane["id"], {"sensitivities": ["normal"]})[0] == 200
    status, mine = me("GET", jane_p)
    assert mine["locked"] == ["sensitivities"]
    status, answer = me("PATCH", jane_p, {"sensitivities": ["normal", "personal", "private"]})
    assert status == 403 and "sensitivities locked by an administrator" in answer["error"]
    assert services.store.get_resource(jane["id"]).consent.sensitivities == {"normal"}
    assert me("PATCH", jane_p, {"showAs": ["busy"]})[0] == 200  # the other fields stay hers
    assert admin("PATCH", jane["id"], {"locked": []})[1]["locked"] == []  # released by an administrator
    assert me("PATCH", jane_p, {"sensitivities": ["normal", "personal"]})[0] == 200


def test_a_change_riding_on_the_session_cookie_needs_x_requested_with(people, services):
    """Another site's form can make the browser post with the platform's session cookie, but cannot
    add a header: a principal's change without X-Requested-With is refused, a read is not."""
    jane, jane_p = people["jane"]
    status, answer = me("PATCH", jane_p, {"showAs": ["busy"]}, same_origin=False)
    assert status == 403 and "cross-site" in answer["error"]
    assert services.store.get_resource(jane["id"]).consent.show_as != {"busy"}
    assert me("GET", jane_p, same_origin=False)[0] == 200
    assert me("POST", jane_p, {}, route="me/preview", same_origin=False)[0] == 403
    admin_p = {"x-ms-client-principal": principal_header(ADMIN_ROLE)}
    retry = function_app.manage_transactions_retry
    assert call(retry, "manage/transactions/retry", "POST", admin_p).status_code == 403
    assert (
        call(retry, "manage/transactions/retry", "POST", {**admin_p, "X-Requested-With": "console"}).status_code != 403
    )
    assert call(retry, "manage/transactions/retry", "POST", MANAGE_HEADERS).status_code != 403  # a key: no cookie


def test_who_may_not_use_the_own_page(people, services, graph):
    _, jane_p = people["jane"]
    stranger = graph.add_user(mail="stranger@contoso.com")
    status, answer = me("GET", principal_header(oid=stranger["id"]))
    assert status == 404 and "not onboarded" in answer["error"]
    assert me("GET", None)[0] == 401
    assert me("GET", "%%%")[0] == 401
    services.settings = replace(services.settings, app_service_auth=False)
    status, answer = me("GET", jane_p)  # a forged header where the platform is not in front
    assert status == 401 and "off here" in answer["error"]


def test_the_session_says_who_is_signed_in(people, services):
    jane, jane_p = people["jane"]

    def session(headers: dict[str, str]) -> dict:
        request = func.HttpRequest("GET", "/api/session", headers=headers, body=b"")
        return json.loads(function_app.console_session(request).get_body())

    mine = session({"x-ms-client-principal": jane_p})
    assert mine["signedIn"] and not mine["admin"] and mine["objectId"] == jane["id"]
    assert session({"x-ms-client-principal": principal_header(ADMIN_ROLE)})["admin"]
    assert session({})["signedIn"] is False and session({})["signInUrl"].startswith("/.auth/login/aad")
    services.settings = replace(services.settings, app_service_auth=False)
    assert session({"x-ms-client-principal": jane_p}) == {"appServiceAuth": False, "signedIn": False, "admin": False}


def test_the_preview_applies_the_draft_to_the_next_week_and_masks_private_subjects(people, services, graph):
    jane, jane_p = people["jane"]
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)

    def at(hours: int) -> str:
        return (soon + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")

    graph.create_event(jane["id"], subject="<img src=x onerror=alert(1)>", start=at(0), end=at(1), show_as="busy")
    graph.create_event(jane["id"], subject="Dentist", start=at(2), end=at(3), show_as="oof", sensitivity="private")
    graph.create_event(jane["id"], subject="Lunch", start=at(4), end=at(5), show_as="free")
    graph.create_event(jane["id"], subject="Next month", start=at(24 * 20), end=at(24 * 20 + 1))
    before = len(graph.requests) if hasattr(graph, "requests") else None

    status, shown = me("POST", jane_p, {"sensitivities": ["normal", "private"]}, route="me/preview")
    assert status == 200
    rows = {r["subject"]: r for r in shown["items"]}
    assert set(rows) == {"<img src=x onerror=alert(1)>", "Dentist", "Lunch"}  # the next 7 days only
    assert rows["<img src=x onerror=alert(1)>"]["boardSubject"] == "<img src=x onerror=alert(1)>"
    assert rows["Dentist"]["shown"] and rows["Dentist"]["boardSubject"] == "Private appointment"
    assert not rows["Lunch"]["shown"] and rows["Lunch"]["reason"] == "show-as-not-consented"
    assert shown["consent"]["sensitivities"] == ["normal", "private"]
    if before is not None:
        assert len(graph.requests) - before == 1  # one calendarView read
    # the draft is not saved
    assert services.store.get_resource(jane["id"]).consent.sensitivities == {"normal", "personal"}
    # a locked field keeps the administrator's value in the preview too
    admin("PATCH", jane["id"], {"sensitivities": ["normal"]})
    status, shown = me("POST", jane_p, {"sensitivities": ["normal", "private"]}, route="me/preview")
    assert shown["consent"]["sensitivities"] == ["normal"]
    assert not {r["subject"]: r for r in shown["items"]}["Dentist"]["shown"]
