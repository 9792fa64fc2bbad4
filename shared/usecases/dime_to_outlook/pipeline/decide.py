"""Decide: pure functions from what was read to what to do (Dime.Scheduler → Outlook).

No I/O here: the decisions come from `shared/core/dime_to_outlook/*` (`appointment_refusal`,
`decide_event`, the rules), and this module assembles them per appointment: who gets an event
(after the rules), the appointment's next state row, and per mailbox create / PATCH / delete /
skip with a reason (`Step`), each executed by `write.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from shared.core.decision import Action, Decision
from shared.core.dime_to_outlook.decision import decide_event
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.dime_to_outlook.outlook_event import desired_hash, event_body, with_look
from shared.core.dime_to_outlook.publication import Publication
from shared.core.dime_to_outlook.rule_facts import facts_of
from shared.core.dime_to_outlook.rules import RuleSet, Verdict
from shared.core.transactions import SyncError
from shared.settings import Settings

RULE_PREFIX = "rule: "
HELD = "held: "


@dataclass(frozen=True)
class Target:
    """An eligible assigned resource: where its event goes and what the tag names."""

    mailbox_id: str
    resource: str
    email: str


@dataclass
class PublicationOutcome:
    skipped: str | None = None  # an appointment-level reason (stale, deleted, outlook-origin)
    decisions: dict[str, Decision] = field(default_factory=dict)  # mailbox → decision
    error: SyncError | None = None
    # Deletes a rule asks for, not executed (`hold_rule_deletes`): the reconcile passes them
    # through the circuit breaker with its other deletes.
    held: list[tuple[EventLink, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """What happens in one mailbox: the decision and what executing it needs."""

    mailbox: str
    decision: Decision
    target: Target | None
    link: EventLink | None
    body: dict[str, Any] | None
    verdict: Verdict | None = None


def apply_rules(
    rules: RuleSet, pub: Publication, targets: dict[str, Target]
) -> tuple[dict[str, Target], list[tuple[str, str]], dict[str, Verdict]]:
    """The targets a rule lets through (with the verdict that shapes their event), and the ones it
    keeps off Outlook, as unmatched entries naming the rule."""
    kept: dict[str, Target] = {}
    skipped: list[tuple[str, str]] = []
    looks: dict[str, Verdict] = {}
    for mailbox, target in targets.items():
        verdict = rules.evaluate(facts_of(pub, target.resource))
        if verdict.skipped:
            skipped.append((target.resource, f"{RULE_PREFIX}{verdict.rule}"))
            continue
        kept[mailbox] = target
        if verdict.rule is not None:
            looks[mailbox] = verdict
    return kept, skipped, looks


def body_for(settings: Settings, pub: Publication, resource: str, verdict: Verdict | None = None) -> dict[str, Any]:
    """The event we want in that resource's calendar (the rule's look applied)."""
    body = event_body(pub, resource, settings.dime_event_show_as, settings.dime_category_time_marker)
    return with_look(body, pub, resource, verdict.outcome) if verdict is not None else body


def kept_targets(state: AppointmentState | None, links: dict[str, EventLink]) -> tuple[dict[str, Target], list]:
    """A payload that says nothing about resources: keep placing it where it is (nothing is
    deleted on a missing field; the reconcile's listing settles assignments)."""
    known = [link for link in links.values() if link.event_id]
    targets = {k.mailbox_id: Target(k.mailbox_id, k.resource, k.resource_email) for k in known}
    return targets, list(state.unmatched) if state else []


def next_state(
    pub: Publication,
    state: AppointmentState | None,
    *,
    deleting: bool,
    authoritative: bool,
    unmatched: list[tuple[str, str]],
    now: str,
) -> AppointmentState | None:
    """The appointment's row after this publication, or None when it is unchanged (no write).
    The newest LastModifiedDate stays, unless an authoritative one (the reconcile's) replaces it."""
    newest = pub.last_modified
    replaceable = authoritative and newest is not None
    if state is not None and state.last_modified and (newest is None or state.last_modified > newest):
        newest = newest if replaceable else state.last_modified
    fresh = AppointmentState(
        guid=pub.guid,
        last_modified=newest,
        deleted=deleting,
        publication=(state.publication if state else None) if deleting else pub.to_message(),
        unmatched=tuple(unmatched),
        updated_at=now,
        etag=state.etag if state else None,
    )
    if state is not None and replace(state, updated_at=None, etag=None) == replace(fresh, updated_at=None, etag=None):
        return None
    return fresh


def planned_mailboxes(state: AppointmentState | None, links: dict[str, EventLink]) -> set[str]:
    """The mailboxes the version applied last plans an event in, as far as the rows tell (a
    stale delivery judges intents by it, never by its own older version)."""
    if state is None or state.deleted or not state.publication:
        return set()
    pub = Publication.from_message(state.publication)
    if not pub.assignments_known:
        return {m for m, link in links.items() if link.event_id}
    return {m for m, link in links.items() if pub.names_resource(link.resource)}


def steps(
    settings: Settings,
    pub: Publication,
    targets: dict[str, Target],
    looks: dict[str, Verdict],
    unmatched: list[tuple[str, str]],
    links: dict[str, EventLink],
    *,
    deleting: bool,
    hold_rule_deletes: bool,
) -> tuple[list[Step], list[tuple[EventLink, str]]]:
    """Per mailbox (a target, or a row naming an event or a dismissal), in mailbox order: the
    step; and the rule deletes held for the caller's breaker (`hold_rule_deletes`), whose step is
    a SKIP "held: …"."""
    reason_gone = "appointment-deleted" if deleting else None
    unmatched_reason = {label: reason for label, reason in unmatched}
    planned: list[Step] = []
    held: list[tuple[EventLink, str]] = []
    for mailbox in sorted(set(targets) | {m for m, link in links.items() if link.event_id or link.dismissed}):
        link = links.get(mailbox)
        target = targets.get(mailbox)
        verdict = looks.get(mailbox)
        if target is not None:
            body = body_for(settings, pub, target.resource, verdict)
            planned.append(Step(mailbox, decide_event(desired_hash(body), None, link), target, link, body, verdict))
            continue
        why_not = reason_gone or (unmatched_reason.get(link.resource) if link else None) or "unassigned"
        decision = decide_event(None, why_not, link)
        if hold_rule_deletes and decision.action is Action.DELETE and why_not.startswith(RULE_PREFIX):
            assert link is not None
            held.append((link, why_not))
            decision = Decision(Action.SKIP, HELD + why_not)
        planned.append(Step(mailbox, decision, None, link, None, verdict))
    return planned, held
