"""The Dime.Scheduler → Outlook reconcile, fanned out like the other timers (usecases/fanout.py).

Why: the reconcile walked Dime.Scheduler's whole listing, and every person's calendar, inside one
timer invocation (a singleton: one instance, minutes at a few thousand people, never scaled out).
Now the timer reads the directory once (Dime.Scheduler's resources, who is onboarded, the
calendars we hold rows for), hands the mailboxes out on the chunk queue (`mailbox-chunks`, kind
`dime-reconcile`, CHUNK_SIZE a message) and returns; each chunk is one pass of `run_dime_reconcile`
over its people (their appointments listed 20 resources a request, placed, vanished ones and
orphans deleted under the per-mailbox breaker), so the platform's scale-out does the work.

- The directory, not the message, decides: a chunk works only on the mailboxes the timer itself
  would hand out (a resource of Dime.Scheduler's directory maps to it, or an event-link row of ours
  names it); any other id is counted, logged in the chunk's one line, and touched in no way (no
  claim row, no Graph request).
- Each mailbox of a run is claimed first (adapters/storage/mailbox_claims.py, the other timers'
  rows, partition `~claims-dime-reconcile`): a chunk delivered twice at once runs each person once;
  delivered again after it finished, it costs its reads and no Graph request.
- An appointment is placed whole, as the publication worker places it: for every assigned person,
  also one of another chunk (the per-appointment state row and its etag keep concurrent placements
  apart; an unchanged event costs nothing).
- A failure of the pass (the listing, storage) gives its claims back and raises: the host delivers
  the chunk again, and after maxDequeueCount the poison function makes it a failed transaction an
  administrator sees and retries (operation `dime-reconcile-chunk`).
- One run record for the whole run (`~dime-scheduler`, `dime-reconcile`, as before, read by the
  status view and the console): the timer opens it ("0 of N chunks done"), each chunk adds its
  figures (etag-conditional), so it reads as the sum of the run, complete when every chunk is done.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol

from shared.adapters.request_meter import metered
from shared.core.fanout import CHUNK_SIZE, Chunk, chunk_messages, claim_expiry, run_id, split_claims
from shared.core.runs import DIME_RECONCILE, DIME_SCHEDULER_SCOPE, RunStats, opened_run, with_chunk
from shared.names import MAILBOX_CHUNKS_QUEUE, SYNCSTATE_TABLE
from shared.services import Services
from shared.usecases.dime_to_outlook.pipeline.read import Mailboxes, mailbox_for, resource_directory
from shared.usecases.dime_to_outlook.reconcile import links_of, run_dime_reconcile

log = logging.getLogger(__name__)

PASS_SECONDS = 10 * 60  # a chunk's pass is stopped by the host at 10 minutes (host.json functionTimeout)
RECORD_ATTEMPTS = 5  # chunks finishing together add to the run record in turn (etag-conditional)


class ChunkOutcome(Protocol):
    """What a chunk did (`usecases.fanout.ChunkReport`), filled in here."""

    ran: list[str]
    done_already: list[str]
    held: list[str]
    not_onboarded: list[str]
    outcomes: dict[str, str]


async def fan_out_dime_reconcile(services: Services, *, chunk_size: int = CHUNK_SIZE) -> tuple[str, int, int]:
    """The timer: read the directory once, open the run's record, send the chunks. (run, mailboxes,
    messages). A directory that cannot be read fails the run visibly (its record says why) and sends
    nothing."""
    started = services.clock()
    run = run_id(DIME_RECONCILE, started, uuid.uuid4().hex)
    with metered() as meter:  # the timer's own requests count in the run's figures too
        try:
            ids = sorted(await reconciled_mailboxes(services, refresh=True))
        except Exception as error:
            failed = RunStats(DIME_RECONCILE, DIME_SCHEDULER_SCOPE, started, reason="timer", round=run)
            failed.error(f"the directory could not be read: {type(error).__name__}: {error}")
            failed.graph_requests, failed.dime_requests = meter.graph, meter.dime
            await services.astore.syncstate.save_run(failed.finish("failed", services.clock()))
            raise
    messages = chunk_messages(DIME_RECONCILE, run, ids, chunk_size)
    opened = opened_run(DIME_RECONCILE, DIME_SCHEDULER_SCOPE, started, run, len(messages), len(ids))
    opened.graph_requests, opened.dime_requests = meter.graph, meter.dime
    await services.astore.syncstate.save_run(opened.finish(opened.outcome, services.clock()))
    await services.aqueues.send_many(MAILBOX_CHUNKS_QUEUE, messages)
    log.info("%s timer %s: %d mailboxes in %d messages", DIME_RECONCILE, run, len(ids), len(messages))
    return run, len(ids), len(messages)


async def reconciled_mailboxes(
    services: Services, among: set[str] | None = None, *, refresh: bool = False, onboarded: Mailboxes | None = None
) -> set[str]:
    """The mailboxes a reconcile covers (of `among`, when given): those the directory maps an
    eligible resource of Dime.Scheduler to (the same test as the pass itself), and the calendars
    an event-link row of ours names (their orphans are swept)."""
    directory = await resource_directory(services, refresh=refresh)
    onboarded = onboarded or await Mailboxes.read(services)
    found: set[str] = set()
    for resource in directory.values():
        if resource.exchange_enabled and resource.email:
            mailbox = await mailbox_for(services, resource.email, onboarded)
            if mailbox is not None and (among is None or mailbox in among):
                found.add(mailbox)
    rows = await links_of(services, among)
    return found | {row.mailbox_id for row in rows if row.event_id or row.pending is not None}


async def run_dime_chunk(services: Services, chunk: Chunk, report: ChunkOutcome, margin_seconds: float) -> Any:
    """One chunk: its mailboxes the directory covers, claimed, then one reconcile pass over them."""
    from shared.adapters.storage.mailbox_claims import finish_claims, take_claims

    named = set(chunk.mailbox_ids)
    onboarded = await Mailboxes.read(services)  # read once for the chunk: its check and its pass
    covered = await reconciled_mailboxes(services, named, onboarded=onboarded)
    report.not_onboarded.extend(sorted(named - covered))
    now, owner = services.clock(), uuid.uuid4().hex
    expires = claim_expiry(now, PASS_SECONDS, margin_seconds)
    tables = services.astore.tables
    claims = await take_claims(tables, DIME_RECONCILE, sorted(covered), chunk.run, owner, now, expires)
    split = split_claims(claims)
    taken = split.taken
    report.done_already.extend(split.done)
    report.held.extend(split.held)
    outcome = ""
    try:
        if taken:
            recorded: list[RunStats] = []

            async def record(run: RunStats) -> None:
                recorded.append(run)
                await add_to_run_record(services, chunk.run, run)

            await run_dime_reconcile(services, only_mailboxes=set(taken), record=record, onboarded=onboarded)
            outcome = recorded[-1].outcome if recorded else "completed"
    finally:
        # Done by this run, or given back unfinished ("") when the pass raised: a redelivery runs it again.
        finished = [(m, chunk.run if outcome else "", etag) for m, etag in taken.items()]
        await finish_claims(tables, DIME_RECONCILE, finished)
        log.info(
            "%s chunk of %s: %d ran (%s), %d done already, %d held elsewhere, %d not covered by the directory",
            DIME_RECONCILE, chunk.run, len(taken) if outcome else 0, outcome or ("failed" if taken else "none"),
            len(report.done_already),
            len(report.held), len(report.not_onboarded),
        )  # fmt: skip
    report.ran.extend(sorted(taken))
    report.outcomes.update(dict.fromkeys(taken, outcome))
    return report


async def add_to_run_record(services: Services, run: str, part: RunStats) -> None:
    """Add a chunk's figures to its run's record (read, add, write conditional on the read; in turn
    with the chunks finishing at the same moment). Never raises: the record is for people."""
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    from shared.adapters.storage.syncstate_store import RUN_ROW_SUFFIX, run_values
    from shared.adapters.storage.table_rows import conditional

    tables, row_key = services.astore.tables, DIME_RECONCILE + RUN_ROW_SUFFIX
    try:
        for _ in range(RECORD_ATTEMPTS):
            row = await tables.get(SYNCSTATE_TABLE, DIME_SCHEDULER_SCOPE, row_key)
            total = with_chunk(dict(row) if row is not None else None, part, run, services.clock())
            if total is None:
                log.warning("%s: the run record is another run's; this chunk's figures are only logged", run)
                return
            entity = {"PartitionKey": DIME_SCHEDULER_SCOPE, "RowKey": row_key, **run_values(total)}
            try:
                etag = conditional(row.metadata["etag"])  # type: ignore[union-attr]
                await tables.call(SYNCSTATE_TABLE, "update_entity", entity, mode=UpdateMode.REPLACE, **etag)
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # another chunk wrote it first: read again
        log.warning("%s: the run record stayed busy; this chunk's figures are only logged", run)
    except Exception:
        log.exception("could not add a chunk to the Dime.Scheduler reconcile's run record")
