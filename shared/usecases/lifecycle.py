"""The lifecycle worker: Graph says a subscription needs attention.

- reauthorizationRequired: renew by PATCH (a new expiry). We never also call /reauthorize: Graph
  asks for one or the other, and both within 10 minutes is refused.
- subscriptionRemoved: create the subscription again, then resynchronise the mailbox (delta).
- missed: some notifications were lost: resynchronise the mailbox (delta).

Only mailboxes we track and that are enabled are acted on; for anything else the event is logged
and dropped (a reauthorizationRequired for a subscription we no longer want deletes it, so Graph
stops asking). Transient Graph failures raise, so the queue delivers the message again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from shared.services import Services
from shared.usecases.subscriptions import renew, request_resync, subscribe

log = logging.getLogger(__name__)


async def handle_lifecycle(message: dict[str, Any], services: Services) -> str:
    """Act on one queued lifecycle notification; returns what was done (for logs and tests)."""
    from shared.adapters.subscription_rows import delete_subscription_row

    mailbox_id = str(message.get("mailboxId") or "").lower()
    subscription_id = str(message.get("subscriptionId") or "")
    event = str(message.get("lifecycleEvent") or "")
    store = services.store
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
        else:
            await renew(services, replace(resource, subscription_id=subscription_id))
            outcome = "renewed"
    elif event == "subscriptionRemoved":
        await asyncio.to_thread(delete_subscription_row, store, subscription_id)
        if not current or resource is None:
            outcome = "ignored"
        else:
            await subscribe(services, replace(resource, subscription_id=None, subscription_expiry=None))
            request_resync(services, mailbox_id, "subscriptionRemoved")
            outcome = "recreated"
    elif event == "missed":
        if not tracked:
            outcome = "ignored"
        else:
            request_resync(services, mailbox_id, "missed")
            outcome = "resync-requested"
    else:
        outcome = "ignored"
    log.info("lifecycle %s for subscription %s of %s: %s", event, subscription_id, mailbox_id, outcome)
    return outcome
