"""The lifecycle worker: Graph says a subscription needs attention.

- reauthorizationRequired: renew by PATCH (a new expiry). We never also call /reauthorize: Graph
  asks for one or the other, and both within 10 minutes is refused. Debounced across POSTs: within
  RENEW_DEBOUNCE of our last create or renewal (the row's RenewedAt) nothing is sent; otherwise
  GET /subscriptions/{id} must show it on this mailbox's events first (404: created anew).
- subscriptionRemoved: GET /subscriptions/{id} must confirm it (404, or expired); then create the
  subscription again and resynchronise the mailbox (delta). One Graph says is alive is looked at
  once more RECHECK_SECONDS later (a forged item costs two GETs, never a create).
- missed: some notifications were lost: resynchronise the mailbox (delta), debounced per mailbox.
- strayed (ours, from the webhook): Graph holds a subscription for the mailbox that our table does
  not (a create whose answer was lost, a duplicate: Graph never answers 409): delete it, unless its
  row has appeared meanwhile.

Lifecycle items carry no `resource`: the webhook took the mailbox from the clientState and let the
item through only when the subscriptions table holds that subscription id for that mailbox. Here
it acts only for mailboxes we track and that are enabled; anything else is logged and dropped (a
reauthorizationRequired for a subscription we no longer want deletes it, so Graph stops asking).
Transient Graph failures raise, so the queue delivers the message again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.core.outlook_to_dime.subscriptions import LifecycleVerdict, lifecycle_verdict, renewed_recently
from shared.core.outlook_to_dime.webhook import STRAY_EVENT
from shared.core.resources import Resource
from shared.core.transactions import ErrorCode, SyncError
from shared.names import LIFECYCLE_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime.subscriptions import Pacer, renew, request_resync, subscribe

log = logging.getLogger(__name__)

_stray_pacer = Pacer()  # stray deletions share the subscription write budget of this process
# A reauthorizationRequired within this long of our last create or renewal costs no PATCH (Graph:
# never reauthorize and PATCH within 10 minutes; a forged flood costs one PATCH per window).
RENEW_DEBOUNCE = timedelta(minutes=10)
RECHECK_KEY = "recheck"  # ours only: the webhook builds lifecycle messages from fixed fields
RECHECK_SECONDS = 300


async def handle_lifecycle(message: dict[str, Any], services: Services) -> str:
    """Act on one queued lifecycle notification; returns what was done (for logs and tests)."""
    from shared.adapters.storage.subscription_rows import delete_subscription_row, get_subscription

    mailbox_id = str(message.get("mailboxId") or "").lower()
    subscription_id = str(message.get("subscriptionId") or "")
    event = str(message.get("lifecycleEvent") or "")
    store = services.store
    if event == STRAY_EVENT:
        return await _delete_stray(services, mailbox_id, subscription_id)
    row = await asyncio.to_thread(get_subscription, store, subscription_id)
    if row is None or row.mailbox_id != mailbox_id:
        # The webhook checked, but the row may have gone since (a renewal replaced it): not ours now.
        log.info("lifecycle %s for subscription %s no longer held for %s: ignored", event, subscription_id, mailbox_id)
        return "ignored"
    resource = await asyncio.to_thread(store.get_resource, mailbox_id) if mailbox_id else None
    tracked = resource is not None and resource.consent.enabled
    current = tracked and resource is not None and resource.subscription_id in (subscription_id, None)

    if event == "reauthorizationRequired":
        if (
            not tracked
            or resource is None
            or (resource.subscription_id and resource.subscription_id != subscription_id)
        ):
            # Not a subscription we want (mailbox removed or disabled, or superseded): stop it.
            await services.graph.delete_subscription(subscription_id)
            await asyncio.to_thread(delete_subscription_row, store, subscription_id)
            outcome = "deleted-unwanted"
        elif renewed_recently(row.renewed_at, services.clock(), RENEW_DEBOUNCE):
            outcome = "renew-debounced"  # renewed minutes ago (a repeat, or a forged one): no PATCH
        else:
            verdict = await _confirm(services, event, subscription_id, mailbox_id)
            if verdict is LifecycleVerdict.RENEW:
                await renew(services, replace(resource, subscription_id=subscription_id))
                outcome = "renewed"
            elif verdict is LifecycleVerdict.RECREATE:
                outcome = await _recreate(services, resource, subscription_id, event)
            else:
                outcome = f"unconfirmed-{verdict.value}"
    elif event == "subscriptionRemoved":
        verdict = await _confirm(services, event, subscription_id, mailbox_id)
        if verdict is LifecycleVerdict.RECREATE:
            if not current or resource is None:
                await asyncio.to_thread(delete_subscription_row, store, subscription_id)
                outcome = "ignored"
            else:
                outcome = await _recreate(services, resource, subscription_id, event)
        elif verdict is LifecycleVerdict.ALIVE and not message.get(RECHECK_KEY):
            # Graph says it still exists. A forged item, or Graph's read lagging behind its own
            # removal (unverified): look once more a few minutes later, then let it be.
            recheck = {**message, RECHECK_KEY: 1}
            await asyncio.to_thread(services.queues.send, LIFECYCLE_QUEUE, recheck, delay_seconds=RECHECK_SECONDS)
            outcome = "unconfirmed-alive-recheck"
        else:
            outcome = f"unconfirmed-{verdict.value}"
    elif event == "missed":
        if not tracked:
            outcome = "ignored"
        else:
            requested = await asyncio.to_thread(request_resync, services, mailbox_id, "missed", debounce=True)
            outcome = "resync-requested" if requested else "resync-debounced"
    else:
        outcome = "ignored"
    log.info("lifecycle %s for subscription %s of %s: %s", event, subscription_id, mailbox_id, outcome)
    return outcome


async def _confirm(services: Services, event: str, subscription_id: str, mailbox_id: str) -> LifecycleVerdict:
    """Graph's own answer about the subscription (GET /subscriptions/{id}), judged."""
    answer = await services.graph.get_subscription(subscription_id)
    verdict = lifecycle_verdict(event, answer, mailbox_id, services.clock())
    if verdict is LifecycleVerdict.UNREADABLE:
        # Never guess: the queue delivers the message again, a poisoned one becomes visible.
        raise SyncError(
            ErrorCode.GRAPH_UNAVAILABLE, f"GET /subscriptions/{subscription_id}: no readable resource or expiry"
        )
    if verdict is LifecycleVerdict.FOREIGN:
        log.warning("lifecycle %s: Graph holds subscription %s on another resource than %s", event, subscription_id,
                    mailbox_id)  # fmt: skip
    return verdict


async def _recreate(services: Services, resource: Resource, subscription_id: str, event: str) -> str:
    """Graph confirmed the subscription gone: forget its row, create it again, resynchronise."""
    from shared.adapters.storage.subscription_rows import delete_subscription_row

    await asyncio.to_thread(delete_subscription_row, services.store, subscription_id)
    await subscribe(services, replace(resource, subscription_id=None, subscription_expiry=None))
    reason = event if event == "subscriptionRemoved" else "subscriptionRecreated"  # notifications may be lost
    await asyncio.to_thread(request_resync, services, resource.object_id, reason, debounce=True)
    return "recreated"


async def _delete_stray(services: Services, mailbox_id: str, subscription_id: str) -> str:
    from shared.adapters.storage.subscription_rows import get_subscription

    row = await asyncio.to_thread(get_subscription, services.store, subscription_id)
    if row is not None:  # its row appeared meanwhile (a create that was still being recorded)
        outcome = "stray-now-known"
    else:
        await _stray_pacer.write()
        gone = not await services.graph.delete_subscription(subscription_id)
        outcome = "stray-already-gone" if gone else "stray-deleted"
    log.warning("stray subscription %s for mailbox %s: %s", subscription_id, mailbox_id, outcome)
    return outcome
