"""The Dime.Scheduler → Outlook decision: pure functions returning what to do and why.

The same shape as the Outlook → Dime.Scheduler decision (`shared/core/decision.py`): an `Action`
(upsert = create or PATCH, delete, skip) and a reason, computed first and executed separately.
"""

from __future__ import annotations

from shared.core.decision import Action, Decision
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.dime_to_outlook.publication import Publication, is_newer_or_same


def appointment_refusal(
    pub: Publication, state: AppointmentState | None, deleting: bool, *, authoritative: bool = False
) -> str | None:
    """Why this publication is not applied at all, or None.

    `authoritative`: the appointment as the reconcile read it from Dime.Scheduler's own state
    (`GET /appointment`), which is the truth whatever LastModifiedDate we applied before (a
    forged future one included): it overrides a `stale` verdict."""
    if state is not None and state.outlook_origin:
        return "outlook-origin"  # the Outlook → Dime.Scheduler path created it: never written back
    if state is None:
        return None
    if not authoritative and not is_newer_or_same(pub.last_modified, state.last_modified):
        return "stale"  # an older LastModifiedDate than the one applied: replayed or late
    # A tombstone: only a strictly newer publication brings the appointment back.
    # (Strictly newer, not merely different: an authoritative listing older than the delete, read
    # while the delete was under way, must not bring the appointment back.)
    newer = not is_newer_or_same(state.last_modified, pub.last_modified)
    comparable = pub.last_modified is not None and state.last_modified is not None
    if state.deleted and not deleting and not (comparable and newer):
        return "deleted"
    return None


def decide_event(desired_hash: str | None, why_not: str | None, link: EventLink | None) -> Decision:
    """One (appointment, resource): desired_hash None with why_not = it must not be in Outlook."""
    has_event = link is not None and link.event_id is not None
    if desired_hash is None:
        reason = why_not or "not-wanted"
        return Decision(Action.DELETE, reason) if has_event else Decision(Action.SKIP, reason)
    if not has_event:
        if link is not None and link.dismissed and link.sent_hash == desired_hash:
            return Decision(Action.SKIP, "deleted-in-outlook")  # kept (DIME_OUTLOOK_EDITS=keep) until it changes
        return Decision(Action.UPSERT, "new")
    assert link is not None
    if link.sent_hash == desired_hash:
        return Decision(Action.SKIP, "unchanged")
    return Decision(Action.UPSERT, "changed")
