"""Timers that grow with the tenant: the delta, reconcile and renewal timers hand their mailboxes out
on the chunk queue, and a queue function runs each chunk.

Why: a timer is a singleton (one instance runs it), so walking every mailbox inside it, eight at a
time, takes minutes at a few thousand mailboxes and never scales out. Here the timer lists the
directory once (one partition query), sends one message per CHUNK_SIZE mailboxes and returns; the
platform scales the queue function out over instances, each running its chunk's mailboxes with the
same per-mailbox work as before (`delta_mailbox`, `reconcile_mailbox`, `renew_mailbox`).

- The directory, not the message, decides: the worker reads each named mailbox again and works
  only on those onboarded (delta: and enabled); the rest is counted and logged in one line.
- A mailbox of a run is claimed first (adapters/storage/mailbox_claims.py): a chunk delivered twice
  at once runs each mailbox once, and one delivered again after it finished costs two range reads
  (its directory rows and its claims). Delta also keeps its own lease inside `delta_mailbox` (a
  resync may run it too). A chunk's claims are taken together and finished together, at its end.
- A mailbox's failure is its run record's, as before (the next timer run tries again); a failure
  of the chunk itself (storage) raises, the host delivers it again, and after maxDequeueCount the
  poison function makes it a failed transaction an administrator sees and retries.
- Renewal sends only the mailboxes that need a write now (or a move to the current clientState
  key), and spaces their messages so that the instances together stay under Graph's subscription
  write limit (each process also paces its own writes).
- The timer's run record (timer_runs.py) says what it started: mailboxes listed, messages sent.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.core.fanout import (
    CHUNK_SIZE,
    Chunk,
    Claim,
    Rejected,
    chunk_delays,
    chunk_messages,
    claim_expiry,
    parse_chunk,
    renewal_targets,
    run_id,
    split_claims,
)
from shared.core.outlook_to_dime.subscriptions import WINDOW_SECONDS, WRITES_PER_WINDOW
from shared.core.resources import Resource
from shared.core.runs import DELTA, RECONCILE, RENEWAL
from shared.names import MAILBOX_CHUNKS_QUEUE, RESYNC_QUEUE
from shared.services import Services

log = logging.getLogger(__name__)

CLAIM_MARGIN_SECONDS = 120  # a claim outlives its chunk's budget by this much (then a crashed worker's expires)
CHUNK_CONCURRENCY = 8  # mailboxes of one chunk run at once (as the timer did)
# Renewal: a mailbox costs at most 2 subscription writes (a renewal that finds it gone and creates
# it, or a move to the current key); 5 messages per window is half of WRITES_PER_WINDOW, the other
# half a margin for the chunks of one window that are still writing when the next become visible.
RENEWAL_CHUNKS_PER_WINDOW = max(1, WRITES_PER_WINDOW // (4 * CHUNK_SIZE))

_renewal_pacer: Any = None  # this process's subscription-write pacer, shared by its renewal chunks


@dataclass
class FanOut:
    """What one timer invocation started."""

    kind: str
    run: str
    listed: int  # mailboxes in the directory
    handed_out: int  # mailboxes named in the messages
    messages: int


@dataclass
class ChunkReport:
    """What one chunk did, mailbox by mailbox (the per-mailbox figures are in their run records)."""

    kind: str = ""
    run: str = ""
    rejected: str | None = None
    ran: list[str] = field(default_factory=list)
    done_already: list[str] = field(default_factory=list)  # this run did them (a message delivered again)
    held: list[str] = field(default_factory=list)  # another worker holds them
    not_onboarded: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)  # delta only: nothing to read
    outcomes: dict[str, str] = field(default_factory=dict)


async def fan_out(services: Services, kind: str, *, chunk_size: int = CHUNK_SIZE) -> FanOut:
    """The timer: list the directory, send the chunks, record the run. Reads nothing from Graph."""
    from shared.usecases.timer_runs import save_timer_run

    started = services.clock()
    run = run_id(kind, started, uuid.uuid4().hex)
    resources = await services.astore.list_resources()
    ids = sorted(await _handed_out(services, kind, resources))  # contiguous row keys: one range read per chunk
    messages = chunk_messages(kind, run, ids, chunk_size)
    delays = (
        chunk_delays(len(messages), RENEWAL_CHUNKS_PER_WINDOW, WINDOW_SECONDS)
        if kind == RENEWAL
        else [0] * len(messages)
    )
    await _send(services, messages, delays)
    fanned = FanOut(kind, run, len(resources), len(ids), len(messages))
    log.info("%s timer %s: %d of %d mailboxes in %d messages", kind, run, len(ids), len(resources), len(messages))
    # changes: mailboxes listed; writes: messages sent; skipped: mailboxes this kind has nothing for
    await save_timer_run(
        services, kind, started, changes=len(resources), writes=len(messages), skipped=len(resources) - len(ids),
        round=f"{run}: {len(ids)} mailboxes in {len(messages)} messages",
    )  # fmt: skip
    return fanned


async def _handed_out(services: Services, kind: str, resources: list[Resource]) -> list[str]:
    if kind == DELTA:
        return [r.object_id for r in resources if r.consent.enabled]
    if kind == RECONCILE:  # disabled mailboxes too: their links are what the decision removes
        return [r.object_id for r in resources]
    from shared.usecases.outlook_to_dime.subscriptions import current_fingerprint

    rows = await _subscription_fingerprints(services)
    within = timedelta(minutes=services.settings.renew_within_minutes)
    return renewal_targets(resources, rows, current_fingerprint(services), services.clock(), within)


async def _subscription_fingerprints(services: Services) -> dict[str, str]:
    """Every recorded subscription's fingerprint (one partition query, as the resources)."""
    from shared.adapters.storage.subscription_rows import SUBSCRIPTION_PARTITION
    from shared.names import SUBSCRIPTIONS_TABLE

    entities = await services.astore.tables.query(
        SUBSCRIPTIONS_TABLE, "PartitionKey eq @pk", {"pk": SUBSCRIPTION_PARTITION}, select=["RowKey", "MadeWith"]
    )
    return {str(e["RowKey"]): str(e.get("MadeWith") or "") for e in entities}


async def _send(services: Services, messages: list[dict[str, Any]], delays: list[int]) -> None:
    now = [message for message, delay in zip(messages, delays, strict=True) if not delay]
    await services.aqueues.send_many(MAILBOX_CHUNKS_QUEUE, now)
    for message, delay in zip(messages, delays, strict=True):
        if delay:
            await services.aqueues.send(MAILBOX_CHUNKS_QUEUE, message, delay_seconds=delay)


async def run_chunk(message: Any, services: Services, *, budget_seconds: float | None = None) -> ChunkReport:
    """The queue function: each onboarded mailbox of the chunk, claimed, then its timer's work."""
    from shared.adapters.storage.mailbox_claims import finish_claims, resources_named, take_claims
    from shared.usecases.outlook_to_dime.mailbox_runs import RUN_BUDGET_SECONDS, Budget

    chunk = parse_chunk(message)
    if isinstance(chunk, Rejected):
        log.warning("chunk message ignored: %s", chunk.reason)
        return ChunkReport(rejected=chunk.reason)
    report = ChunkReport(chunk.kind, chunk.run)
    tables = services.astore.tables
    named = await resources_named(tables, list(chunk.mailbox_ids))
    eligible: dict[str, Resource] = {}
    for mailbox_id, resource in named.items():
        if resource is None:
            report.not_onboarded.append(mailbox_id)
        elif chunk.kind == DELTA and not resource.consent.enabled:
            report.disabled.append(mailbox_id)
        else:
            eligible[mailbox_id] = resource
    budget = Budget(RUN_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    now, owner = services.clock(), uuid.uuid4().hex
    expires = claim_expiry(now, budget.remaining(), CLAIM_MARGIN_SECONDS)
    claims = await take_claims(tables, chunk.kind, list(eligible), chunk.run, owner, now, expires)
    split = split_claims(claims)
    taken = split.taken
    report.done_already.extend(split.done)
    report.held.extend(split.held)
    work, limit = _work(services, chunk, budget), asyncio.Semaphore(CHUNK_CONCURRENCY)

    async def one(mailbox_id: str) -> None:
        async with limit:
            report.outcomes[mailbox_id] = await work(eligible[mailbox_id])
            report.ran.append(mailbox_id)

    outcomes = await asyncio.gather(*(one(m) for m in taken), return_exceptions=True)
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    # Done by this run, or given back unfinished ("") when its work raised: a redelivery runs it again.
    finished = [(m, chunk.run if m in report.outcomes else "", etag) for m, etag in taken.items()]
    await finish_claims(tables, chunk.kind, finished)
    log.info(
        "%s chunk of %s: %d ran, %d done already, %d held elsewhere, %d not onboarded, %d disabled, %d failed",
        chunk.kind, chunk.run, len(report.ran), len(report.done_already), len(report.held),
        len(report.not_onboarded), len(report.disabled), len(failures),
    )  # fmt: skip
    if chunk.kind == RECONCILE:
        await _continue_paused(services, report)
    if failures:  # the host delivers the chunk again: what finished is done, the rest runs again
        raise failures[0]
    return report


def _work(services: Services, chunk: Chunk, budget: Any) -> Callable[[Resource], Awaitable[str]]:
    """The per-mailbox work of the chunk's timer, returning its outcome."""
    from shared.usecases.outlook_to_dime.delta_sync import delta_mailbox
    from shared.usecases.outlook_to_dime.reconcile import reconcile_mailbox

    if chunk.kind == DELTA:

        async def delta(resource: Resource) -> str:
            return (await delta_mailbox(services, resource, "timer", budget)).outcome or ""

        return delta
    if chunk.kind == RECONCILE:

        async def reconcile(resource: Resource) -> str:
            return (await reconcile_mailbox(services, resource, "timer", budget)).outcome or ""

        return reconcile

    async def renewal(resource: Resource) -> str:
        """Renewed, created, deleted or nothing-due; a failure is the mailbox's `renewal-run` record's
        (beside its delta and reconcile runs: what the timer's own record listed before the fan-out)."""
        from shared.core.runs import RunStats
        from shared.usecases.outlook_to_dime.mailbox_runs import guarded_run
        from shared.usecases.outlook_to_dime.subscriptions import Pacer, RenewalReport, renew_mailbox

        global _renewal_pacer
        if _renewal_pacer is None:
            _renewal_pacer = Pacer()
        stats = RunStats(RENEWAL, resource.object_id, services.clock(), "timer")

        async def work() -> str:
            one = RenewalReport()
            await renew_mailbox(services, resource, _renewal_pacer, one)
            stats.writes, stats.deletes = len(one.renewed) + len(one.created), len(one.deleted)
            for reason in one.failed.values():
                stats.error(reason)
            if one.failed:
                return "failed"
            return (
                "renewed" if one.renewed else "created" if one.created else "deleted" if one.deleted else "nothing-due"
            )

        return (await guarded_run(services, stats, work)).outcome or ""

    return renewal


async def _continue_paused(services: Services, report: ChunkReport) -> None:
    """A reconcile pass that ran out of time continues through the resync queue (as before)."""
    from shared.usecases.outlook_to_dime.reconcile import RECONCILE_CONTINUE

    paused = [mailbox for mailbox, outcome in report.outcomes.items() if outcome == "paused"]
    messages = [{"mailboxId": mailbox, "reason": RECONCILE_CONTINUE} for mailbox in paused]
    if messages:
        await services.aqueues.send_many(RESYNC_QUEUE, messages)
        log.info("reconcile continues for %d mailboxes through %s", len(messages), RESYNC_QUEUE)


async def reconcile_claimed(services: Services, resource: Resource, reason: str, budget: Any) -> Any:
    """A reconcile outside the timer (the resync queue: a pass continued, a disabled mailbox) under
    the same claim as the chunks, so it never runs beside a chunk's pass of the mailbox. Held by
    another worker: None (that pass continues from the same cursor, and queues its own continuation)."""
    from shared.adapters.storage.mailbox_claims import finish_claim, take_claim
    from shared.usecases.outlook_to_dime.reconcile import reconcile_mailbox

    now, mailbox = services.clock(), resource.object_id
    run = run_id(RECONCILE, now, uuid.uuid4().hex)
    expires = claim_expiry(now, budget.remaining(), CLAIM_MARGIN_SECONDS)
    tables = services.astore.tables
    verdict, etag = await take_claim(tables, RECONCILE, mailbox, run, uuid.uuid4().hex, now, expires)
    if verdict is not Claim.TAKE:
        log.info("reconcile of %s (%s) not run: another worker holds the mailbox", mailbox, reason)
        return None
    try:
        stats = await reconcile_mailbox(services, resource, reason, budget)
    except Exception:
        await finish_claim(tables, RECONCILE, mailbox, "", etag)
        raise
    await finish_claim(tables, RECONCILE, mailbox, run, etag)
    return stats
