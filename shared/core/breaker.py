"""The circuit breaker that guards deletes inferred from absence.

Delta and reconcile delete appointments because an event is *missing* (404, not listed by a fresh
round). A missing event is also what an expired token, a broken listing or a permissions change
looks like, so such deletes are collected first and decided as a set: a run that would delete a
large share of a mailbox's links, or a fresh round that lists nothing while links exist, deletes
nothing and raises an alert for an administrator instead.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SHARE = 0.2
FLOOR = 5  # up to this many deletes always pass, so small mailboxes can still delete (1 of 2)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # "ok", "empty-listing" or "mass-delete"
    message: str


def check_deletes(
    deletes: int,
    links: int,
    *,
    share: float = DEFAULT_SHARE,
    floor: int = FLOOR,
    empty_listing: bool = False,
) -> Verdict:
    """May a run delete `deletes` of a mailbox's `links` linked appointments?

    Allowed when deletes <= max(share x links, floor); never when a full fresh listing came back
    empty while links exist (empty_listing), whatever the counts.
    """
    if empty_listing and links > 0:
        return Verdict(
            False,
            "empty-listing",
            f"a full listing of the calendar returned no events while {links} appointments are linked; "
            "nothing was deleted",
        )
    limit = max(share * links, floor)
    if deletes > limit:
        return Verdict(
            False,
            "mass-delete",
            f"the run would delete {deletes} of {links} linked appointments "
            f"(more than {share:.0%}, limit {int(limit)}); nothing was deleted",
        )
    return Verdict(True, "ok", f"{deletes} of {links} linked appointments deleted")
