"""The notification worker's entry: a queue message (one change, or a packed POST's changes)
becomes one batch of the pipeline (`shared.usecases.outlook_to_dime.pipeline`).

A packed message's duplicates are folded into one change per event (`packing.fold`), and all its
changes, of all its mailboxes, run as one batch: links read together, events read with `$batch`,
new events proven with calendarView members of a `$batch`, one `/import`, one table batch of
links per mailbox. One event's failure never re-runs the others: a transient failure is put back
on the queue as a message of its own (then retried and poisoned like any other), a permanent one
becomes that event's failed transaction. Only when that re-enqueue itself fails does the packed
message fail, and a redelivery costs the events already done one link read each.

A plain message (one change) is a batch of one: a transient failure raises (the queue delivers
it again, then poisons it), a permanent one becomes a failed transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.core.outlook_to_dime.packing import PACK_LIMIT, PACKED_KEY, fold, is_packed, pack
from shared.core.outlook_to_dime.triage import Change
from shared.core.outlook_to_dime.webhook import ChangeNotification
from shared.core.transactions import SyncError
from shared.names import NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.outlook_to_dime import pipeline
from shared.usecases.outlook_to_dime.pipeline.item import Outcome
from shared.usecases.outlook_to_dime.pipeline.remember import record_failures

log = logging.getLogger(__name__)

__all__ = ["PACKED_KEY", "PACK_LIMIT", "apply_notification", "apply_notifications", "fold", "is_packed", "pack"]


def change_of(message: dict[str, Any]) -> Change:
    """A notification as a pipeline change: a `deleted` is a claim; an event new to us must be
    listed by the primary calendar (notifications cover every calendar). Raises on a message
    without mailboxId/eventId/changeType (KeyError: the queue poisons it, then it is recorded)."""
    note = ChangeNotification.from_message(message)
    return Change(
        note.mailbox_id,
        note.event_id,
        change_key=note.change_key,
        claimed_deleted=note.change_type == "deleted",
        prove_new=True,
        message=message,
    )


async def apply_notification(message: dict[str, Any], services: Services, *, record_failures: bool = True) -> Outcome:
    """One change as a batch of one. Transient failures raise (the queue redelivers, then poisons);
    permanent ones become a failed transaction an administrator can see and retry.

    record_failures=False: the retry of an existing failed transaction, which updates that row
    itself (the permanent error comes back in the Outcome), so no second failed row is written."""
    change = change_of(message)
    (outcome,) = await pipeline.run(services, [change])
    await _settle(services, [(change, outcome)], record=record_failures, raise_transient=True)
    return outcome


async def _settle(
    services: Services, outcomes: list[tuple[Change, Outcome]], *, record: bool, raise_transient: bool
) -> list[Change]:
    """Record the permanent failures (when asked); return the changes that failed transiently
    (raised instead, for a lone change)."""
    again: list[Change] = []
    permanent: list[tuple[Change, SyncError]] = []
    for change, outcome in outcomes:
        error = outcome.error
        if error is None:
            continue
        if error.code.transient:
            log.warning("transient failure, the queue will deliver again: %s", error)
            if raise_transient:
                raise error
            again.append(change)
        else:
            permanent.append((change, error))
    if record and permanent:
        await record_failures(services, permanent)
    return again


async def apply_notifications(message: dict[str, Any], services: Services) -> None:
    """The worker for any notification message: a packed one as one batch, a plain one through
    `apply_notification`."""
    if not is_packed(message):
        await apply_notification(message, services)
        return
    folded = fold(message[PACKED_KEY])
    again: list[dict[str, Any]] = []
    changes: list[Change] = []
    for raw in folded:
        try:
            changes.append(change_of(raw))
        except (KeyError, TypeError, ValueError):
            again.append(raw)  # on its own: it poisons, then becomes a failed transaction
    try:
        outcomes = await pipeline.run(services, changes)
    except Exception as error:  # storage failed for the message: each again on its own (idempotent)
        log.warning("a packed message of %d changes failed: %r", len(changes), error)
        again.extend(change.message or {} for change in changes)
    else:
        transient = await _settle(
            services, list(zip(changes, outcomes, strict=True)), record=True, raise_transient=False
        )
        again.extend(change.message or {} for change in transient)
    log.info("packed message: %d changes, %d again", len(folded), len(again))
    if again:
        log.warning("%d of %d changes of a packed message failed: queued on their own", len(again), len(folded))
        await services.aqueues.send_many(NOTIFICATIONS_QUEUE, again)
