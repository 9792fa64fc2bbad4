"""Keeping one live Graph subscription per enabled mailbox: create (or adopt), renew, remove.

Our own subscriptions are found in the table, never by listing (25 listings per 20 s per tenant).
The single exception is a 409 on create for a mailbox the table knows nothing about: then listing
once is the only way to learn the existing subscription's id.

Writes are ordered so nothing half-created claims to be live: Graph first, then the subscription
row, then the resource row; if a table write fails after Graph created the subscription, the
subscription is deleted again (best effort) and the error is raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from shared.adapters.graph_subscriptions import SubscriptionFailed
from shared.core.resources import Resource
from shared.core.subscriptions import (
    Step,
    TokenBucket,
    expiry_after,
    matches_mailbox,
    renewal_plan,
)
from shared.core.webhook import client_state_for, subscription_fingerprint
from shared.names import RESYNC_QUEUE
from shared.services import Services

log = logging.getLogger(__name__)


class Pacer:
    """Waits before each Graph subscription write so a run stays under 500 writes per 20 s."""

    def __init__(
        self,
        bucket: TokenBucket | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.bucket = bucket or TokenBucket.for_limit()
        self.monotonic = monotonic
        self.sleep = sleep
        self.writes = 0

    async def write(self) -> None:
        delay = self.bucket.take(self.monotonic())
        if delay > 0:
            await self.sleep(delay)
        self.writes += 1


RESYNC_DEBOUNCE = timedelta(seconds=60)


def current_fingerprint(services: Services) -> str:
    """What a subscription made now is made with (current key, current notification URLs)."""
    s = services.settings
    return subscription_fingerprint(s.client_state_secrets[0], s.notification_url, s.lifecycle_notification_url)


def request_resync(services: Services, mailbox_id: str, reason: str, *, debounce: bool = False) -> bool:
    """Ask the delta worker to resynchronise one mailbox (onboarded, subscriptionRemoved, missed).

    debounce: at most one such request per mailbox per RESYNC_DEBOUNCE (lifecycle floods); returns
    whether a message was queued."""
    if debounce:
        from shared.adapters.resync_requests import claim_resync

        if not claim_resync(services.store, mailbox_id.lower(), services.clock(), RESYNC_DEBOUNCE):
            return False
    services.queues.send(RESYNC_QUEUE, {"mailboxId": mailbox_id.lower(), "reason": reason})
    return True


async def _store_live(services: Services, resource: Resource, subscription: dict, created: bool) -> Resource:
    """Record a live subscription: its row, then the resource pointing at it."""
    from shared.adapters.subscription_rows import SubscriptionRow, get_subscription, save_subscription

    now = services.clock().isoformat()
    sub_id, expiry = str(subscription["id"]), str(subscription.get("expirationDateTime") or "")
    live = replace(resource, subscription_id=sub_id, subscription_expiry=expiry, updated_at=now)
    store = services.store
    if created:  # we chose its clientState: under the current key
        made_with = current_fingerprint(services)
    else:  # renewed or adopted: its clientState is whatever it was ("" = unknown, recreated on rotation)
        previous = await asyncio.to_thread(get_subscription, store, sub_id)
        made_with = previous.made_with if previous else ""
    try:
        row = SubscriptionRow(sub_id, resource.object_id, expiry, now, made_with)
        await asyncio.to_thread(save_subscription, store, row)
        await asyncio.to_thread(store.put_resource, live)
    except Exception:
        if created:
            log.exception("could not record subscription %s; deleting it again", sub_id)
            try:
                await services.graph.delete_subscription(sub_id)
            except Exception:
                log.exception("could not delete subscription %s either; the renewal timer will", sub_id)
        raise
    return live


async def _adopt(services: Services, resource: Resource, pacer: Pacer) -> dict | None:
    """After a 409: the existing subscription, renewed to a fresh expiry; None if none is found."""
    from shared.adapters.subscription_rows import delete_subscription_row, subscriptions_of

    store = services.store
    expiry = expiry_after(services.clock(), services.settings.subscription_lifetime_minutes)
    candidates = [r.id for r in await asyncio.to_thread(subscriptions_of, store, resource.object_id)]
    if resource.subscription_id and resource.subscription_id not in candidates:
        candidates.insert(0, resource.subscription_id)
    for sub_id in candidates:
        await pacer.write()
        try:
            return await services.graph.renew_subscription(sub_id, expiry)
        except SubscriptionFailed as error:
            if error.status not in (400, 404):
                raise
            await asyncio.to_thread(delete_subscription_row, store, sub_id)
    # The table does not know it (created by an earlier install, or a lost table write): list once.
    log.warning("409 for mailbox %s and no subscription in the table: listing subscriptions once", resource.object_id)
    for listed in await services.graph.list_subscriptions():
        if not matches_mailbox(listed, resource.object_id):
            continue
        if listed.get("notificationUrl") != services.settings.notification_url or listed.get(
            "lifecycleNotificationUrl"
        ) != (services.settings.lifecycle_notification_url):
            # Someone else's URLs (another deployment of this app registration): replace it.
            await pacer.write()
            await services.graph.delete_subscription(str(listed["id"]))
            return None
        await pacer.write()
        return await services.graph.renew_subscription(str(listed["id"]), expiry)
    return None


async def subscribe(services: Services, resource: Resource, pacer: Pacer | None = None) -> Resource:
    """Create the mailbox's subscription (adopting an existing one on 409) and record it.

    Raises SubscriptionFailed (Graph's status and message) when Graph refused; nothing is stored.
    """
    pacer = pacer or Pacer()
    settings = services.settings
    object_id = resource.object_id

    async def create() -> dict:
        await pacer.write()
        return await services.graph.create_subscription(
            object_id,
            notification_url=settings.notification_url,
            lifecycle_notification_url=settings.lifecycle_notification_url,
            expiry=expiry_after(services.clock(), settings.subscription_lifetime_minutes),
            client_state=client_state_for(object_id, settings.client_state_secrets[0]),
        )

    try:
        subscription = await create()
        created = True
    except SubscriptionFailed as error:
        if error.status != 409:
            raise
        adopted = await _adopt(services, resource, pacer)
        if adopted is None:
            subscription = await create()  # the conflicting one was replaced (or has expired meanwhile)
            created = True
        else:
            subscription, created = adopted, False
            log.info("adopted existing subscription %s of mailbox %s", subscription.get("id"), object_id)
    live = await _store_live(services, resource, subscription, created)
    log.info("mailbox %s subscribed: %s until %s", object_id, live.subscription_id, live.subscription_expiry)
    return live


async def unsubscribe(services: Services, resource: Resource, pacer: Pacer | None = None) -> Resource:
    """Delete the mailbox's subscription at Graph (gone already is fine), then forget it."""
    from shared.adapters.subscription_rows import delete_subscription_row, subscriptions_of

    pacer = pacer or Pacer()
    store = services.store
    ids = [r.id for r in await asyncio.to_thread(subscriptions_of, store, resource.object_id)]
    if resource.subscription_id and resource.subscription_id not in ids:
        ids.insert(0, resource.subscription_id)
    for sub_id in ids:
        await pacer.write()
        await services.graph.delete_subscription(sub_id)
        await asyncio.to_thread(delete_subscription_row, store, sub_id)
    return replace(resource, subscription_id=None, subscription_expiry=None, updated_at=services.clock().isoformat())


async def renew(services: Services, resource: Resource, pacer: Pacer | None = None) -> Resource:
    """PATCH a new expiry; when Graph no longer has it (404, or 400), create a new one."""
    from shared.adapters.subscription_rows import delete_subscription_row

    pacer = pacer or Pacer()
    assert resource.subscription_id
    expiry = expiry_after(services.clock(), services.settings.subscription_lifetime_minutes)
    await pacer.write()
    try:
        renewed = await services.graph.renew_subscription(resource.subscription_id, expiry)
    except SubscriptionFailed as error:
        if error.status not in (400, 404):
            raise
        log.warning(
            "subscription %s of %s is gone (%s): creating anew",
            resource.subscription_id,
            resource.object_id,
            error.status,
        )
        await asyncio.to_thread(delete_subscription_row, services.store, resource.subscription_id)
        live = await subscribe(services, replace(resource, subscription_id=None, subscription_expiry=None), pacer)
        request_resync(services, resource.object_id, "subscriptionRecreated")  # notifications may be lost
        return live
    if "id" not in renewed:
        renewed = {**renewed, "id": resource.subscription_id}
    return await _store_live(services, resource, renewed, created=False)


@dataclass
class RenewalReport:
    renewed: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    writes: int = 0


async def renew_all(services: Services, pacer: Pacer | None = None) -> RenewalReport:
    """The renewal timer: renew what expires soon, create what is missing, delete what is disabled."""
    pacer = pacer or Pacer()
    store = services.store
    resources = await asyncio.to_thread(lambda: list(store.list_resources()))
    within = timedelta(minutes=services.settings.renew_within_minutes)
    report = RenewalReport()
    await _recreate_under_current_key(services, resources, pacer, report)
    for step, resource in renewal_plan(resources, services.clock(), within):
        try:
            if step is Step.RENEW:
                await renew(services, resource, pacer)
                report.renewed.append(resource.object_id)
            elif step is Step.CREATE:
                await subscribe(services, replace(resource, subscription_id=None, subscription_expiry=None), pacer)
                request_resync(services, resource.object_id, "subscriptionRecreated")
                report.created.append(resource.object_id)
            elif step is Step.DELETE:
                updated = await unsubscribe(services, resource, pacer)
                await asyncio.to_thread(store.put_resource, updated)
                report.deleted.append(resource.object_id)
        except Exception as error:  # one mailbox must not stop the others
            log.exception("renewal step %s failed for mailbox %s", step.value, resource.object_id)
            report.failed[resource.object_id] = str(error)
    report.writes = pacer.writes
    log.info(
        "renewal: %d renewed, %d created, %d deleted, %d failed, %d Graph writes",
        len(report.renewed),
        len(report.created),
        len(report.deleted),
        len(report.failed),
        report.writes,
    )
    return report


async def _recreate_under_current_key(
    services: Services, resources: list[Resource], pacer: Pacer, report: RenewalReport
) -> None:
    """After a CLIENT_STATE_SECRET rotation, move every subscription to the new key.

    A renewal cannot change a subscription's clientState, so subscriptions made under the previous
    key are recreated (and their mailboxes resynchronised by delta, since notifications may have
    been missed in between); once none is left, CLIENT_STATE_SECRET_PREVIOUS can be removed.
    """
    from shared.adapters.subscription_rows import get_subscription

    current = current_fingerprint(services)
    for index, resource in enumerate(resources):
        if not (resource.consent.enabled and resource.subscription_id):
            continue
        row = await asyncio.to_thread(get_subscription, services.store, resource.subscription_id)
        if row is None or row.made_with == current:
            continue
        try:
            emptied = await unsubscribe(services, resource, pacer)
            resources[index] = await subscribe(services, emptied, pacer)
            request_resync(services, resource.object_id, "subscriptionRecreated")
            report.created.append(resource.object_id)
        except Exception as error:  # one mailbox must not stop the others
            log.exception("could not move mailbox %s to the current clientState key", resource.object_id)
            report.failed[resource.object_id] = str(error)


class MailboxNotTracked(Exception):
    """A notification for a mailbox that is not onboarded (never onboarded, or removed since)."""
