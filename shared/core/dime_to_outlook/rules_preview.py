"""What a draft rule set would change, before it is saved: a pure comparison, per person.

For each (appointment, person) the rules in force and the draft each give a verdict; the preview
says `skipped` (placed today, off Outlook with the draft), `placed` (the reverse), `changed`
(placed by both, but looking different: another show-as, subject, …) or `unchanged`. Only the
first three are listed; the counts cover all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.core.dime_to_outlook.rules import RuleSet, Verdict


@dataclass(frozen=True)
class Placement:
    """One assigned, eligible person of one appointment, with the facts the rules read."""

    person: str  # as people know them (display name or e-mail)
    resource_no: str
    guid: str
    subject: str | None
    start: str | None
    facts: dict[str, Any]


def change_of(before: Verdict, after: Verdict) -> str:
    if before.skipped and after.skipped:
        return "unchanged"
    if after.skipped:
        return "skipped"
    if before.skipped:
        return "placed"
    return "unchanged" if before.outcome == after.outcome else "changed"


def preview(current: RuleSet, draft: RuleSet, placements: Iterable[Placement]) -> dict[str, Any]:
    counts = {"skipped": 0, "placed": 0, "changed": 0, "unchanged": 0}
    people: dict[str, list[dict[str, Any]]] = {}
    for p in placements:
        before, after = current.evaluate(p.facts), draft.evaluate(p.facts)
        change = change_of(before, after)
        counts[change] += 1
        if change == "unchanged":
            continue
        people.setdefault(p.person, []).append(
            {
                "appointmentGuid": p.guid,
                "resourceNo": p.resource_no,
                "subject": p.subject,
                "start": p.start,
                "change": change,
                "before": _shown(before),
                "after": _shown(after),
            }
        )
    return {
        "counts": counts,
        "people": [
            {"person": person, "changes": sorted(rows, key=lambda r: (r["start"] or "", r["appointmentGuid"]))}
            for person, rows in sorted(people.items())
        ],
    }


def _shown(verdict: Verdict) -> dict[str, Any]:
    o = verdict.outcome
    shown: dict[str, Any] = {"action": o.action, "rule": verdict.rule}
    for key, value in (
        ("showAs", o.show_as),
        ("sensitivity", o.sensitivity),
        ("categories", list(o.categories) if o.categories is not None else None),
        ("subject", o.subject),
        ("reminder", o.reminder),
    ):
        if value is not None:
            shown[key] = value
    return shown
