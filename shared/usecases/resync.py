"""Resynchronising one mailbox on request: a message {"mailboxId", "reason"} on the resync queue.

Senders: lifecycle handling (`missed`, `subscriptionRemoved`), a new subscription, an
administrator (POST .../resources/{mailbox}/resync), and reconcile itself when a pass must
continue (reason "reconcile-continue"). `onboarded` also backfills the planner's appointments
into the new person's calendar (Dime.Scheduler → Outlook).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from shared.adapters.storage.resync_requests import mark_resync_started
from shared.core.runs import RunStats
from shared.names import RESYNC_QUEUE
from shared.services import Services
from shared.usecases.fanout import reconcile_claimed
from shared.usecases.http_answer import HttpAnswer
from shared.usecases.outlook_to_dime.delta_sync import delta_mailbox
from shared.usecases.outlook_to_dime.mailbox_runs import RUN_BUDGET_SECONDS, Budget
from shared.usecases.outlook_to_dime.pipeline.read import state_store
from shared.usecases.outlook_to_dime.reconcile import RECONCILE_CONTINUE

log = logging.getLogger(__name__)

ADMIN_REASON = "admin"
ONBOARDED = "onboarded"
RULES = "rules"  # the rule set was saved: the planner's appointments again, under the new rules


async def resync(
    message: dict[str, Any], services: Services, *, budget_seconds: float | None = None
) -> RunStats | None:
    """Run delta (or continue reconcile) for the mailbox named in the message."""
    mailbox_id = str(message.get("mailboxId") or "").strip().lower()
    reason = str(message.get("reason") or "resync")[:100]
    if not mailbox_id:
        log.warning("resync message without mailboxId ignored: %s", message)
        return None
    resource = await services.astore.get_resource(mailbox_id)
    if resource is None:
        log.warning("resync of unknown mailbox %s ignored (reason %s)", mailbox_id, reason)
        return None
    # Before anything is read: a `missed` arriving from now on is not covered by this run and
    # queues another one (resync_requests.py).
    await asyncio.to_thread(mark_resync_started, services.store, mailbox_id, services.clock())
    budget = Budget(RUN_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    if reason == RECONCILE_CONTINUE:
        return await reconcile_claimed(services, resource, reason, budget)
    if reason == RULES:
        await apply_rules_for(services, {resource.email, resource.upn})
        return None
    if reason == ONBOARDED:
        await backfill_planner_appointments(services, {resource.email, resource.upn})
    if not resource.consent.enabled:
        # A disabled mailbox's appointments leave the board: a reconcile pass from the start,
        # whose decision (mailbox-disabled) deletes every linked one. Delta would read nothing.
        await asyncio.to_thread(state_store(services).restart_reconcile, mailbox_id, services.clock())
        return await reconcile_claimed(services, resource, reason, budget)
    return await delta_mailbox(services, resource, reason, budget)


async def backfill_planner_appointments(services: Services, addresses: set[str]) -> None:
    """A newly onboarded person gets the planner's appointments of the window now: the
    Dime.Scheduler reconcile for the directory's resources holding one of their addresses (their
    Dime.Scheduler e-mail or UPN), which also refreshes the unmatched report of those appointments.
    This process's cached answers for them go first. A failure is logged: the nightly reconcile
    carries the backfill out anyway, and the Outlook → Dime.Scheduler backfill must not wait."""
    from shared.core.transactions import SyncError
    from shared.usecases.dime_to_outlook.place_appointment import forget_mailboxes
    from shared.usecases.dime_to_outlook.reconcile import run_dime_reconcile

    wanted = {a.strip().lower() for a in addresses if a and a.strip()}
    forget_mailboxes(services, sorted(wanted))
    try:
        await run_dime_reconcile(services, only_emails=wanted)
    except SyncError as error:
        log.warning("backfill of the planner's appointments for %s failed (%s); the reconcile timer retries",
                    ", ".join(sorted(wanted)), error.code.value)  # fmt: skip


async def apply_rules_for(services: Services, addresses: set[str]) -> None:
    """After a save of the rules: the Dime.Scheduler reconcile for one person, with the rules read
    afresh (this instance may hold the old ones for a while). Only events whose outcome changed
    are written (content hashes); removals pass the reconcile's breaker. A failure raises: the
    queue delivers the message again."""
    from shared.usecases.dime_to_outlook.reconcile import run_dime_reconcile
    from shared.usecases.dime_to_outlook.rules_in_force import rules_in_force

    await rules_in_force(services, fresh=True)
    await run_dime_reconcile(services, only_emails={a.strip().lower() for a in addresses if a and a.strip()})


async def request_resync(
    mailbox: str, params: dict[str, str], services: Services, reason: str = ADMIN_REASON
) -> HttpAnswer:
    """The admin endpoint: queue a resync of a tracked mailbox, named like on every other
    {mailbox} route (object id, UPN or an unambiguous e-mail): 202, 404 unknown, 409 ambiguous."""
    from shared.core.api_format import unknown_params_reason
    from shared.core.resource_requests import Conflict, InputError, parse_mailbox
    from shared.usecases.admin.resources import find_resource

    if problem := unknown_params_reason(params, ()):
        return _json(400, {"error": problem})
    try:
        resource = await find_resource(services, parse_mailbox(mailbox))
    except InputError as error:
        return _json(400, {"error": str(error)})
    except Conflict as error:
        return _json(409, {"error": str(error)})
    if resource is None:
        return _json(404, {"error": "unknown mailbox", "mailbox": mailbox.strip().lower()[:320]})
    message = {"mailboxId": resource.object_id, "reason": reason}
    await services.aqueues.send(RESYNC_QUEUE, message)
    return _json(202, {"queued": True, **message})


def _json(status: int, body: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(body), "application/json; charset=utf-8")
