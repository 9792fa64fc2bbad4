"""Keeping one live Graph subscription per enabled mailbox: create, renew, remove.

Our own subscriptions are found in the table, never by listing (25 listings per 20 s per tenant).
Graph never answers 409 to a duplicate Outlook subscription: it creates a second one. So creates
go out without the SDK's retry (a retried POST after a lost answer makes a duplicate), and any
subscription Graph holds for a mailbox that the table does not is a stray, deleted when its first
notification shows it (see usecases/webhook.py and lifecycle.py).

Renewal recreates only on 404 (gone). A 400 is read: when it names Graph's lifetime cap, the same
request goes again asking for fewer minutes; any other 400 is an error to show. A 429
`SubscriptionCountReached` (1,000 per mailbox, all apps) is permanent, and the renewal timer
records it as a failed transaction an administrator sees.

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
from shared.core.outlook_to_dime.subscriptions import Step, TokenBucket, allowed_lifetime, expiry_after, renewal_plan
from shared.core.outlook_to_dime.webhook import client_state_for, subscription_fingerprint
from shared.core.resources import Resource
from shared.core.transactions import Status, SyncError, Transaction, new_transaction_id
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


def current_fingerprint(services: Services) -> str:
    """What a subscription made now is made with (current key, current notification URLs)."""
    s = services.settings
    return subscription_fingerprint(s.client_state_secrets[0], s.notification_url, s.lifecycle_notification_url)


def request_resync(services: Services, mailbox_id: str, reason: str, *, debounce: bool = False) -> bool:
    """Ask the delta worker to resynchronise one mailbox (onboarded, subscriptionRemoved, missed).

    debounce: not while a resync of the mailbox is still pending (queued, not yet started: it
    covers this request); once one has started, a request queues another (lifecycle floods cost
    one run, a `missed` after a run began is never lost). Returns whether a message was queued."""
    mailbox_id = mailbox_id.lower()
    if debounce:
        from shared.adapters.storage.resync_requests import claim_resync, release_resync

        if not claim_resync(services.store, mailbox_id, services.clock()):
            return False
        try:
            services.queues.send(RESYNC_QUEUE, {"mailboxId": mailbox_id, "reason": reason})
        except Exception:
            release_resync(services.store, mailbox_id)
            raise
        return True
    services.queues.send(RESYNC_QUEUE, {"mailboxId": mailbox_id, "reason": reason})
    return True


async def _store_live(services: Services, resource: Resource, subscription: dict, created: bool) -> Resource:
    """Record a live subscription: its row, then the resource pointing at it."""
    from shared.adapters.storage.subscription_rows import SubscriptionRow, get_subscription, save_subscription

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
        row = SubscriptionRow(sub_id, resource.object_id, expiry, now, made_with, renewed_at=now)
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


async def subscribe(services: Services, resource: Resource, pacer: Pacer | None = None) -> Resource:
    """Create the mailbox's subscription and record it.

    Raises SubscriptionFailed (Graph's status and message) when Graph refused; nothing is stored.
    """
    pacer = pacer or Pacer()
    settings = services.settings
    object_id = resource.object_id

    async def create(lifetime: int) -> dict:
        await pacer.write()
        return await services.graph.create_subscription(
            object_id,
            notification_url=settings.notification_url,
            lifecycle_notification_url=settings.lifecycle_notification_url,
            expiry=expiry_after(services.clock(), lifetime),
            client_state=client_state_for(object_id, settings.client_state_secrets[0]),
        )

    subscription = await _within_cap(create, settings.subscription_lifetime_minutes)
    live = await _store_live(services, resource, subscription, created=True)
    log.info("mailbox %s subscribed: %s until %s", object_id, live.subscription_id, live.subscription_expiry)
    return live


async def _within_cap(call: Callable[[int], Awaitable[dict]], lifetime: int) -> dict:
    """The call, and once more with fewer minutes when Graph's 400 names its lifetime cap."""
    try:
        return await call(lifetime)
    except SubscriptionFailed as error:
        allowed = allowed_lifetime(error.graph_message) if error.status == 400 else None
        if allowed is None or allowed >= lifetime:
            raise
        log.warning("Graph caps subscriptions below %d minutes: asking for %d", lifetime, allowed)
        return await call(allowed)


async def unsubscribe(services: Services, resource: Resource, pacer: Pacer | None = None) -> Resource:
    """Delete the mailbox's subscription at Graph (gone already is fine), then forget it."""
    from shared.adapters.storage.subscription_rows import delete_subscription_row, subscriptions_of

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
    """PATCH a new expiry; when Graph no longer has it (404), create a new one. A 400 naming the
    lifetime cap is retried with fewer minutes; any other 400 is raised (shown, not recreated)."""
    from shared.adapters.storage.subscription_rows import delete_subscription_row

    pacer = pacer or Pacer()
    assert resource.subscription_id
    subscription_id = resource.subscription_id

    async def patch(lifetime: int) -> dict:
        await pacer.write()
        return await services.graph.renew_subscription(subscription_id, expiry_after(services.clock(), lifetime))

    try:
        renewed = await _within_cap(patch, services.settings.subscription_lifetime_minutes)
    except SubscriptionFailed as error:
        if error.status != 404:
            raise
        log.warning("subscription %s of %s is gone (404): creating anew", subscription_id, resource.object_id)
        await asyncio.to_thread(delete_subscription_row, services.store, subscription_id)
        live = await subscribe(services, replace(resource, subscription_id=None, subscription_expiry=None), pacer)
        request_resync(services, resource.object_id, "subscriptionRecreated")  # notifications may be lost
        return live
    if "id" not in renewed:
        renewed = {**renewed, "id": subscription_id}
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
    from shared.core.runs import RENEWAL
    from shared.usecases.timer_runs import save_timer_run

    started = services.clock()
    pacer = pacer or Pacer()
    store = services.store
    resources = await asyncio.to_thread(lambda: list(store.list_resources()))
    within = timedelta(minutes=services.settings.renew_within_minutes)
    report = RenewalReport()
    await _recreate_under_current_key(services, resources, pacer, report)
    for step, resource in renewal_plan(resources, services.clock(), within):
        await _renewal_step(services, step, resource, pacer, report)
    report.writes = pacer.writes
    log.info(
        "renewal: %d renewed, %d created, %d deleted, %d failed, %d Graph writes",
        len(report.renewed),
        len(report.created),
        len(report.deleted),
        len(report.failed),
        report.writes,
    )
    # changes: mailboxes looked at; writes: subscriptions renewed or created; deletes: removed
    await save_timer_run(
        services, RENEWAL, started, changes=len(resources), writes=len(report.renewed) + len(report.created),
        deletes=len(report.deleted), errors=[f"{mailbox}: {reason}" for mailbox, reason in report.failed.items()],
    )  # fmt: skip
    return report


async def renew_mailbox(services: Services, resource: Resource, pacer: Pacer, report: RenewalReport) -> None:
    """One mailbox's share of the renewal timer, as the fanned-out worker runs it (usecases/fanout.py):
    moved to the current clientState key when made under another, then renewed, created or deleted
    as `renewal_step` says. Failures land in the report (and, permanent, as a failed transaction)."""
    resources = [resource]
    await _recreate_under_current_key(services, resources, pacer, report)
    within = timedelta(minutes=services.settings.renew_within_minutes)
    for step, current in renewal_plan(resources, services.clock(), within):
        await _renewal_step(services, step, current, pacer, report)


async def _renewal_step(
    services: Services, step: Step, resource: Resource, pacer: Pacer, report: RenewalReport
) -> None:
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
            await asyncio.to_thread(services.store.put_resource, updated)
            report.deleted.append(resource.object_id)
    except Exception as error:  # one mailbox must not stop the others
        log.exception("renewal step %s failed for mailbox %s", step.value, resource.object_id)
        report.failed[resource.object_id] = str(error)
        if isinstance(error, SyncError) and not error.code.transient:
            await asyncio.to_thread(record_subscription_failure, services, resource, step, error)


async def _recreate_under_current_key(
    services: Services, resources: list[Resource], pacer: Pacer, report: RenewalReport
) -> None:
    """After a CLIENT_STATE_SECRET rotation, move every subscription to the new key.

    A renewal cannot change a subscription's clientState, so subscriptions made under the previous
    key are recreated (and their mailboxes resynchronised by delta, since notifications may have
    been missed in between); once none is left, CLIENT_STATE_SECRET_PREVIOUS can be removed.
    """
    from shared.adapters.storage.subscription_rows import get_subscription

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


def record_subscription_failure(services: Services, resource: Resource, step: Step, error: SyncError) -> None:
    """A permanent subscription failure (SubscriptionCountReached, a refused renewal) as a failed
    transaction an administrator sees; the same mailbox's next failure reopens that row instead of
    adding one per timer run. The timer tries again each run; fixing the cause is the person's job."""
    from shared.adapters.storage.transactions_store import transaction_store

    store = transaction_store(services)
    now = services.clock()
    fingerprint = f"subscription-{resource.object_id}"
    existing = store.by_fingerprint(fingerprint)
    if existing is not None and existing.status is Status.FAILED:
        existing.attempts += 1
        existing.error_code, existing.message = error.code.value, error.message
        existing.updated_at = now.isoformat()
        store.save(existing)
        return
    transaction = Transaction(
        id=new_transaction_id(now),
        mailbox_id=resource.object_id,
        direction="outlook-to-dime",
        operation=f"subscription-{step.value}",
        status=Status.FAILED,
        created_at=now.isoformat(),
        updated_at=now.isoformat(),
        error_code=error.code.value,
        message=error.message,
        attempts=1,
    )
    store.add(transaction)
    store.remember_fingerprint(fingerprint, transaction)


class MailboxNotTracked(Exception):
    """A notification for a mailbox that is not onboarded (never onboarded, or removed since)."""
