"""Guarded deletes of a mailbox run (delta and reconcile): the events a run found gone (a 404, not
listed by a full round, disowned by the calendar's listing) are decided as one set by the circuit
breaker, then deleted as one pipeline batch, or, when the breaker trips, none of them (the run
records why and an administrator is alerted: breaker_alerts.py).

A mixin of `MailboxRun` (mailbox_runs.py).
"""

from __future__ import annotations

from shared.core.breaker import Verdict
from shared.core.links import Link
from shared.core.outlook_to_dime.triage import Change
from shared.core.runs import RunStats
from shared.services import Services
from shared.usecases.outlook_to_dime.breaker_alerts import guarded


class GuardedDeletes:
    """`MailboxRun.delete_guarded`."""

    services: Services
    stats: RunStats

    @property
    def mailbox_id(self) -> str:
        raise NotImplementedError  # MailboxRun's

    async def apply(self, changes: list[Change]) -> None:
        raise NotImplementedError  # MailboxRun's

    async def delete_guarded(self, candidates: list[Link], *, empty_listing: bool = False) -> Verdict | None:
        """Delete the events known to be gone, unless the breaker forbids the set as a whole."""
        unique = list({link.event_id: link for link in candidates}.values())
        if not unique and not empty_listing:
            return None
        verdict, message = await guarded(
            self.services, self.mailbox_id, self.stats.kind, unique, empty_listing=empty_listing
        )
        if not verdict.allowed:
            self.stats.breaker = message
            return verdict
        await self.apply(
            [
                Change(self.mailbox_id, link.event_id, gone=True, link=link, link_known=True, breaker_passed=True)
                for link in unique
            ]
        )
        return verdict
