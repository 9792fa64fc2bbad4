"""Each person's own consent page: `GET /api/session`, `GET|PATCH /api/me`, `POST /api/me/preview`.

The seed's business rules let each person set their own consent, with administrators able to
override. Here a person signed in through Entra ID (App Service Authentication) reads and changes
**their own** settings: enabled, show-as values, sensitivities. Who they are comes from the
principal App Service vouches for (shared/core/principal.py: only when WEBSITE_AUTH_ENABLED says
the platform is in front), never from the URL or the body, so nobody can name another person.

* A field an administrator set is locked (Resource.locked): the person's change of it is refused
  403 with the reason, and the page shows it locked.
* A change takes effect as an administrator's does (resources.apply_change): a resync of the
  mailbox, an unsubscribe when disabled, a new subscription when enabled again.
* The preview reads the person's calendar over the next 7 days from Graph **once** and applies
  the draft consent with the same pure functions the sync uses (decision.refusal, the board's
  private-subject masking), so the page shows what the board will show, and nothing is written.

`GET /api/session` says whether App Service Authentication is on and who is signed in, so the
console knows whether to ask for the management key, show every page, or only the person's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.core.api_format import iso_utc
from shared.core.consent import Consent, ConsentError
from shared.core.decision import refusal
from shared.core.events import EventFormatError, event_from_graph
from shared.core.outlook_to_dime.appointments import PRIVATE_SUBJECT
from shared.core.principal import ADMIN_ROLE, Principal, PrincipalError, cross_site, signed_in
from shared.core.resource_requests import (
    CONSENT_FIELDS,
    InputError,
    ResourceInput,
    apply_input,
    locked_in,
    parse_own_body,
    resource_json,
)
from shared.core.resources import Resource
from shared.core.transactions import SyncError
from shared.services import Services
from shared.usecases.dime_to_outlook.inbound import RefusalLog
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

JSON = "application/json; charset=utf-8"
PREVIEW_DAYS = 7
PREVIEW_MAX_EVENTS = 300  # a week of a very busy calendar; more is cut, and the answer says so
SIGN_IN_URL = "/.auth/login/aad?post_login_redirect_uri=/api/console/%23/me"
SIGN_OUT_URL = "/.auth/logout?post_logout_redirect_uri=/api/console/"
REFUSALS = RefusalLog(what="own-settings request(s) without a signed-in person", logger=log)


def _json(status: int, document: Any) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(document), JSON)


def _error(status: int, reason: str) -> HttpAnswer:
    return _json(status, {"error": reason})


def session(headers: Mapping[str, str], services: Services) -> HttpAnswer:
    """Who the console is talking to: App Service Authentication on or off, and the signed-in
    person (name, object id, whether they hold Connector.Admin). Reads no storage."""
    auth = services.settings.app_service_auth
    body: dict[str, Any] = {"appServiceAuth": auth, "signedIn": False, "admin": False}
    if auth:
        body |= {"signInUrl": SIGN_IN_URL, "signOutUrl": SIGN_OUT_URL}
    try:
        principal = signed_in(headers, auth)
    except PrincipalError as error:
        REFUSALS.record("unreadable principal")
        return _json(200, body | {"error": f"the sign-in was not understood ({error})"})
    if principal is not None:
        body |= {
            "signedIn": True,
            "admin": principal.is_admin,
            "name": principal.name,
            "upn": principal.upn,
            "objectId": principal.object_id,
            "role": ADMIN_ROLE,
        }
    return _json(200, body)


def _me(headers: Mapping[str, str], services: Services, method: str = "GET") -> Principal | HttpAnswer:
    """The signed-in person, or the 401 answer (O(1), touching no state); 403 for a change without
    X-Requested-With (principal.cross_site: another site's form riding on the session cookie)."""
    try:
        principal = signed_in(headers, services.settings.app_service_auth)
    except PrincipalError as error:
        REFUSALS.record("unreadable principal")
        return _error(401, f"the sign-in was not understood ({error}); sign in again")
    if principal is None:
        REFUSALS.record("not signed in")
        if not services.settings.app_service_auth:
            return _error(401, "your own page needs Entra ID sign-in (App Service Authentication), which is off here")
        return _error(401, "sign in with your work account first")
    if cross_site(method, headers):
        REFUSALS.record("cross-site change")
        return _error(403, "a change needs the X-Requested-With header (sent by the console): refused as cross-site")
    return principal


def own_json(resource: Resource, principal: Principal) -> dict[str, Any]:
    """What the person's page shows of them: their consent and what is locked, no subscription
    internals."""
    full = resource_json(resource)
    return {
        "id": resource.object_id,
        "name": principal.name,
        "upn": resource.upn,
        "enabled": full["enabled"],
        "showAs": full["showAs"],
        "sensitivities": full["sensitivities"],
        "locked": full["locked"],
        "updatedAt": full["updatedAt"],
    }


async def _resource(services: Services, principal: Principal) -> Resource | HttpAnswer:
    resource = await asyncio.to_thread(services.store.get_resource, principal.object_id)
    if resource is None:
        return _error(404, "you are not onboarded to the calendar sync; ask an administrator to add you")
    return resource


async def my_settings(method: str, headers: Mapping[str, str], body: bytes, services: Services) -> HttpAnswer:
    """GET: the person's own settings. PATCH: change them (locked fields refused 403)."""
    from shared.usecases.admin.resources import apply_change

    principal = _me(headers, services, method)
    if isinstance(principal, HttpAnswer):
        return principal
    method = method.upper()
    if method not in ("GET", "PATCH"):
        return _error(405, "method not allowed; use GET or PATCH")
    try:
        change = parse_own_body(body) if method == "PATCH" else ResourceInput()
        if change.show_as is not None or change.sensitivities is not None:
            Consent.parse(True, change.show_as or "", change.sensitivities or "")
    except (InputError, ConsentError) as error:
        return _error(400, str(error))
    resource = await _resource(services, principal)
    if isinstance(resource, HttpAnswer):
        return resource
    if method == "GET":
        return _json(200, own_json(resource, principal))
    if locked := locked_in(resource, change):
        return _error(403, f"{', '.join(locked)} locked by an administrator: ask them to change it")
    answer = await apply_change(services, resource, change, resource.locked)
    if answer.status != 200:
        return answer
    log.info("%s changed their own consent (%s)", principal.object_id, ", ".join(change.consent_fields()) or "none")
    stored = await asyncio.to_thread(services.store.get_resource, principal.object_id)
    return _json(200, own_json(stored or resource, principal))


async def preview(headers: Mapping[str, str], body: bytes, services: Services) -> HttpAnswer:
    """What the board would show of the person's next 7 days with a draft consent (the stored one
    for the fields the draft leaves out, and always for locked ones). Nothing is written."""
    principal = _me(headers, services, "POST")
    if isinstance(principal, HttpAnswer):
        return principal
    try:
        draft = parse_own_body(body)
        resource = await _resource(services, principal)
        if isinstance(resource, HttpAnswer):
            return resource
        kept = {name: None for name in CONSENT_FIELDS if name in resource.locked}
        draft = replace(
            draft,
            enabled=None if "enabled" in kept else draft.enabled,
            show_as=None if "showAs" in kept else draft.show_as,
            sensitivities=None if "sensitivities" in kept else draft.sensitivities,
        )
        consent = apply_input(resource, draft).consent
    except (InputError, ConsentError) as error:
        return _error(400, str(error))
    start = services.clock().replace(microsecond=0)
    end = start + timedelta(days=PREVIEW_DAYS)
    try:
        documents = await services.graph.calendar_view(resource.object_id, iso_utc(start), iso_utc(end))
    except SyncError as error:
        status = 503 if error.code.transient else 502
        return _error(status, f"could not read your calendar from Microsoft Graph: {error.message}")
    return _json(200, preview_of(documents, consent, (start, end), services.settings.sync_private_details))


def preview_of(
    documents: list[dict[str, Any]], consent: Consent, window: tuple[Any, Any], private_details: bool
) -> dict[str, Any]:
    """The preview rows: each event with whether it reaches the board and, if so, the subject the
    board shows (a private event's masked unless SYNC_PRIVATE_DETAILS); the reason when it does not."""
    rows = []
    for document in documents[:PREVIEW_MAX_EVENTS]:
        try:
            event = event_from_graph(document)
        except EventFormatError as error:
            rows.append(
                {
                    "subject": str(document.get("subject") or "")[:300],
                    "shown": False,
                    "reason": f"unreadable ({str(error)[:100]})",
                    "start": None,
                    "end": None,
                }
            )
            continue
        if event.planner_tag:  # written here for a planner appointment: on the board already, never re-imported
            rows.append(_row(event, shown=True, board=event.subject, reason="from-the-planning-board"))
            continue
        why_not = refusal(event, consent, window)
        board = None if why_not else (PRIVATE_SUBJECT if event.is_private and not private_details else event.subject)
        rows.append(_row(event, shown=why_not is None, board=board, reason=why_not))
    rows.sort(key=lambda r: r.get("start") or "")
    show_as, sensitivities = consent.as_csv()
    return {
        "consent": {
            "enabled": consent.enabled,
            "showAs": [v for v in show_as.split(",") if v],
            "sensitivities": [v for v in sensitivities.split(",") if v],
        },
        "from": iso_utc(window[0]),
        "until": iso_utc(window[1]),
        "items": rows,
        "capped": len(documents) > PREVIEW_MAX_EVENTS,
    }


def _row(event: Any, *, shown: bool, board: str | None, reason: str | None) -> dict[str, Any]:
    return {
        "subject": event.subject[:300],
        "start": iso_utc(event.start),
        "end": iso_utc(event.end),
        "isAllDay": event.is_all_day,
        "showAs": event.show_as,
        "sensitivity": event.sensitivity,
        "shown": shown,
        "boardSubject": board,
        "reason": reason,
    }
