"""The resources admin API: onboard, inspect, change and remove the people whose calendars sync.

Routes (see function_app.py; prefix names.ADMIN_ROUTE_PREFIX, host-reserved "admin" avoided):
  GET    manage/resources                      every tracked mailbox
  PUT    manage/resources/{mailbox}            onboard (or replace settings of) a mailbox
  GET    manage/resources/{mailbox}            one mailbox
  PATCH  manage/resources/{mailbox}            change e-mail or consent
  DELETE manage/resources/{mailbox}[?removeAppointments=true]

{mailbox} is an object id or a UPN (exact), else a Dime.Scheduler e-mail that exactly one person
has (several: 409). Input is validated before anything is called (unknown query parameters or body
fields: 400); a Graph failure answers 502/503 with the reason, and leaves nothing half-created
(see usecases/subscriptions.py). Disabling a person queues a resync that removes their
appointments from the board at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

from shared.core.api_format import page, unknown_params_reason
from shared.core.consent import Consent, ConsentError
from shared.core.links import OUTLOOK_ORIGIN
from shared.core.resource_requests import (
    Conflict,
    InputError,
    ResourceInput,
    admin_locks,
    apply_input,
    email_owner,
    parse_mailbox,
    parse_resource_body,
    resolve_mailbox,
    resource_json,
)
from shared.core.resources import Resource, resource_from_user
from shared.core.transactions import SyncError
from shared.services import Services
from shared.usecases.http_answer import HttpAnswer
from shared.usecases.outlook_to_dime.subscriptions import request_resync, subscribe, unsubscribe

log = logging.getLogger(__name__)

JSON = "application/json; charset=utf-8"
DISABLED_REASON = "disabled"  # resync reason: remove a disabled mailbox's appointments now
ONBOARDED_REASON = "onboarded"  # resync reason: backfill both ways (usecases/resync.py)
DELETE_BATCH = 50


def _json(status: int, document: Any) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(document), JSON)


def _error(status: int, reason: str) -> HttpAnswer:
    return _json(status, {"error": reason})


def _upstream_error(error: SyncError, what: str) -> HttpAnswer:
    """A Graph/Dime.Scheduler failure as an answer: 400 for Graph refusing the subscription (e.g.
    the validation handshake failed), 503 when it may work later, 502 otherwise."""
    from shared.adapters.graph_subscriptions import SubscriptionFailed

    if isinstance(error, SubscriptionFailed) and error.status == 400:
        return _error(400, f"{what}: {error.message}. Check NOTIFICATION_URL and LIFECYCLE_NOTIFICATION_URL")
    if error.code.transient:
        return _error(503, f"{what}: {error.message}; try again later")
    return _error(502, f"{what}: {error.message}")


def _check_consent_values(change: ResourceInput) -> None:
    """Refuse unknown show-as/sensitivity values before calling anything (ConsentError)."""
    Consent.parse(True, change.show_as or "", change.sensitivities or "")


async def _all(services: Services) -> list[Resource]:
    return await services.astore.list_resources()


async def find_resource(services: Services, mailbox: str) -> Resource | None:
    """A tracked mailbox by object id or UPN (exact), else by a Dime.Scheduler e-mail that exactly
    one person has; Conflict when several share it. No Graph call."""
    return resolve_mailbox(mailbox, await _all(services))


async def _refuse_taken_email(services: Services, change: ResourceInput, object_id: str) -> None:
    if change.email and (owner := email_owner(change.email, object_id, await _all(services))):
        raise Conflict(f"the e-mail {change.email} is already used by {owner.object_id}: each person needs their own")


ALLOWED_PARAMS = {"DELETE": {"removeAppointments"}}


def _flag(params: dict[str, str], name: str) -> bool:
    raw = (params.get(name) or "false").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no", ""):
        return False
    raise InputError(f"{name} must be true or false")


async def list_resources(params: dict[str, str], services: Services) -> HttpAnswer:
    """Every tracked mailbox, in the API's one list shape (no paging: one row per person)."""
    if reason := unknown_params_reason(params, ()):
        return _error(400, reason)
    return _json(200, page([resource_json(r) for r in await _all(services)], None))


async def resource_request(
    method: str, mailbox: str | None, body: bytes, params: dict[str, str], services: Services
) -> HttpAnswer:
    """One request on manage/resources/{mailbox}."""
    try:
        key = parse_mailbox(mailbox)
        method = method.upper()
        if reason := unknown_params_reason(params, ALLOWED_PARAMS.get(method, ())):
            raise InputError(reason)
        if method == "PUT":
            return await _put(services, key, parse_resource_body(body))
        if method == "PATCH":
            return await _patch(services, key, parse_resource_body(body))
        if method == "DELETE":
            return await _delete(services, key, _flag(params, "removeAppointments"))
        if method == "GET":
            resource = await find_resource(services, key)
            return _json(200, resource_json(resource)) if resource else _not_onboarded(key)
        return _error(405, "method not allowed; use GET, PUT, PATCH or DELETE")
    except (InputError, ConsentError) as error:
        return _error(400, str(error))
    except Conflict as error:
        return _error(409, str(error))


def _not_onboarded(mailbox: str) -> HttpAnswer:
    return _error(404, f"mailbox {mailbox} is not onboarded (PUT it first)")


async def _enable(services: Services, resource: Resource, reason: str) -> Resource:
    """Subscribe (unless the stored subscription is still live) and request a backfill."""
    from shared.adapters.storage.subscription_rows import get_subscription, unmark_removed

    row = await asyncio.to_thread(get_subscription, services.store, resource.subscription_id or "")
    if resource.subscription_id and row is not None:
        await services.astore.put_resource(resource)
        live = resource
    else:
        live = await subscribe(services, replace(resource, subscription_id=None, subscription_expiry=None))
    await asyncio.to_thread(unmark_removed, services.store, resource.object_id)
    await asyncio.to_thread(request_resync, services, resource.object_id, reason)
    return live


async def _disable(services: Services, resource: Resource, reason: str = DISABLED_REASON) -> Resource:
    """Stop the subscription, then resync: the mailbox's appointments leave the board now (the
    resync of a disabled mailbox runs reconcile, whose decision deletes every linked one). A person
    onboarded disabled (reason "onboarded") still gets the planner's appointments placed."""
    from shared.adapters.storage.subscription_rows import unmark_removed

    updated = await unsubscribe(services, resource)
    await services.astore.put_resource(updated)
    await asyncio.to_thread(unmark_removed, services.store, resource.object_id)
    await asyncio.to_thread(request_resync, services, resource.object_id, reason)
    return updated


async def _put(services: Services, mailbox: str, change: ResourceInput) -> HttpAnswer:
    _check_consent_values(change)
    try:
        user = await services.graph.get_user(mailbox)
    except SyncError as error:
        return _upstream_error(error, "could not look the mailbox up in Graph")
    if user is None or not user.get("id"):
        return _error(404, f"no user {mailbox} in this tenant (Graph answered 404)")
    object_id = str(user["id"]).lower()
    await _refuse_taken_email(services, change, object_id)
    existing = await services.astore.get_resource(object_id)
    now = services.clock().isoformat()
    if existing is None:
        base = replace(resource_from_user(user, services.settings.default_consent), created_at=now)
    else:
        base = replace(
            existing,
            upn=str(user.get("userPrincipalName") or existing.upn),
            display_name=str(user.get("displayName") or existing.display_name),
        )
    resource = replace(apply_input(base, change), updated_at=now, locked=admin_locks(base, change))
    _forget_cached_mailboxes(services, resource, existing)
    try:
        if resource.consent.enabled:
            resource = await _enable(services, resource, ONBOARDED_REASON)
        else:
            resource = await _disable(services, resource, ONBOARDED_REASON if existing is None else DISABLED_REASON)
    except SyncError as error:
        return _upstream_error(error, "could not subscribe to the mailbox's calendar")
    answer = resource_json(resource)
    if existing is None:
        answer["onboardingMail"] = await _onboarding_mail(services, user, resource)
    return _json(201 if existing is None else 200, answer)


async def _onboarding_mail(services: Services, user: dict[str, Any], resource: Resource) -> str:
    """Mail a newly onboarded person the link to their own page, when ONBOARDING_MAIL_FROM is set:
    "sent", "off", or "failed: <reason>" (the onboarding itself stands; the answer says so, and
    the administrator can send the link by hand)."""
    from shared.core.onboarding_mail import onboarding_message, own_page_url

    sender = services.settings.onboarding_mail_from
    if not sender:
        return "off"
    recipient = str(user.get("mail") or resource.upn)
    name = str(user.get("displayName") or "")
    message = onboarding_message(recipient, name, own_page_url(services.settings.notification_url))
    try:
        await services.graph.send_mail(sender, message)
    except SyncError as error:
        log.warning("onboarding mail to %s not sent: %s", resource.object_id, error.message)
        return f"failed: {error.message}"
    return "sent"


def _forget_cached_mailboxes(services: Services, resource: Resource, before: Resource | None) -> None:
    """Onboarding (or a new e-mail) ends every cached "no mailbox" answer for the person in this
    process; other instances read who is onboarded afresh per message (place_appointment)."""
    from shared.usecases.dime_to_outlook.place_appointment import forget_mailboxes

    addresses = [resource.email, resource.upn] + ([before.email, before.upn] if before else [])
    forget_mailboxes(services, [a for a in addresses if a])


async def _patch(services: Services, mailbox: str, change: ResourceInput) -> HttpAnswer:
    """An administrator's change: what they set is locked against the person's own page."""
    _check_consent_values(change)
    existing = await find_resource(services, mailbox)
    if existing is None:
        return _not_onboarded(mailbox)
    await _refuse_taken_email(services, change, existing.object_id)
    return await apply_change(services, existing, change, admin_locks(existing, change))


async def apply_change(
    services: Services, existing: Resource, change: ResourceInput, locked: frozenset[str]
) -> HttpAnswer:
    """Store a change of a tracked person and make it take effect (subscribe, unsubscribe or
    resync), whoever made it: an administrator (_patch) or the person (usecases/admin/me.py)."""
    resource = replace(apply_input(existing, change), updated_at=services.clock().isoformat(), locked=locked)
    new_email = resource.email.lower() != existing.email.lower()
    if new_email:
        _forget_cached_mailboxes(services, resource, existing)
    try:
        if resource.consent.enabled and not existing.consent.enabled:
            resource = await _enable(services, resource, ONBOARDED_REASON)
        elif not resource.consent.enabled and existing.consent.enabled:
            resource = await _disable(services, resource)
        else:
            await services.astore.put_resource(resource)
            if new_email:
                # Another Dime.Scheduler e-mail: the planner's appointments of that resource now.
                await asyncio.to_thread(request_resync, services, resource.object_id, ONBOARDED_REASON)
            elif resource.consent.enabled and resource.consent != existing.consent:
                await asyncio.to_thread(request_resync, services, resource.object_id, "consentChanged")
    except SyncError as error:
        return _upstream_error(error, "could not change the mailbox's subscription")
    return _json(200, resource_json(resource))


async def _delete(services: Services, mailbox: str, remove_appointments: bool) -> HttpAnswer:
    from shared.adapters.storage.subscription_rows import delete_resource_row, mark_removed

    existing = await find_resource(services, mailbox)
    if existing is None:
        return _not_onboarded(mailbox)
    store = services.store
    try:
        await unsubscribe(services, existing)
        # Marked removed before the row goes, so a notification racing this request is dropped.
        await asyncio.to_thread(mark_removed, store, existing.object_id, services.clock().isoformat())
        removed = await _remove_appointments(services, existing) if remove_appointments else 0
    except SyncError as error:
        return _upstream_error(error, "could not remove the mailbox")
    await asyncio.to_thread(delete_resource_row, store, existing.object_id)
    log.info("mailbox %s removed (%d appointments deleted)", existing.object_id, removed)
    return _json(200, {"deleted": existing.object_id, "appointmentsRemoved": removed})


async def _remove_appointments(services: Services, resource: Resource) -> int:
    """Delete, through the Dime.Scheduler delete procedure, the appointments this app created for
    the mailbox (Outlook-originated links), then every link of the mailbox."""
    from shared.core.outlook_to_dime.appointments import MissingDeleteValues, delete_call

    store = services.store
    links = await asyncio.to_thread(lambda: list(store.links_of(resource.object_id)))
    ours = [link for link in links if link.origin == OUTLOOK_ORIGIN]
    calls = []
    for k in ours:
        try:
            calls.append(delete_call(k.appointment_guid, k.resource_email, k.kept_values, k.appointment_id))
        except MissingDeleteValues as error:  # never send "" for typed values: leave it, say so
            log.warning("appointment %s of %s not deleted: %s", k.appointment_guid, resource.object_id, error)
    for start in range(0, len(calls), DELETE_BATCH):
        await services.adime.run_import(calls[start : start + DELETE_BATCH])
    for link in links:
        await asyncio.to_thread(_forget_link, store, link)
    return len(calls)


def _forget_link(store: Any, link: Any) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.adapters.storage.tables import ConcurrentUpdate

    try:
        store.delete_link(link)
    except ConcurrentUpdate:
        store.delete_link(replace(link, etag="*"))
    except ResourceNotFoundError:
        pass
