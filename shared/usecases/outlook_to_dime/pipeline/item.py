"""One change on its way through the pipeline: what was read of it, its verdict, its outcome."""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.decision import Decision
from shared.core.links import Link
from shared.core.outlook_to_dime.triage import Change, Known, Verdict, known_from
from shared.core.resources import Resource
from shared.core.transactions import SyncError


@dataclass(frozen=True)
class Outcome:
    """What happened to one change: the decision taken, or the error that stopped it (a transient
    one is for the entry to deliver again, a permanent one becomes a failed transaction)."""

    decision: Decision | None = None
    error: SyncError | None = None


@dataclass
class Item:
    change: Change
    resource: Resource | None = None
    known: Known | None = None  # type: ignore[assignment]
    verdict: Verdict | None = None
    outcome: Outcome | None = None
    answer: dict[str, str] | None = None  # the /import's answer: appointment ids by lower-cased GUID
    written: bool = False  # the import carrying this item's call was accepted

    def __post_init__(self) -> None:
        if self.known is None:
            self.known = known_from(self.change)

    def fail(self, error: SyncError) -> None:
        self.outcome = Outcome(None, error)

    def done(self, decision: Decision) -> None:
        self.outcome = Outcome(decision)

    def lost_race(self, upserted: Link | None, deleted: bool) -> None:
        """Another instance changed the link under our write: read again and decide afresh,
        remembering what we did to the board (`Race`)."""
        race = self.known.race
        race.upserted = upserted or race.upserted
        race.deleted = race.deleted or deleted
        race.rounds += 1
        self.known = known_from(
            Change(
                self.change.mailbox_id,
                self.change.event_id,
                change_key=self.change.change_key,
                claimed_deleted=self.change.claimed_deleted,
                prove_new=self.change.prove_new,
                gone=self.change.gone,
                breaker_passed=self.change.breaker_passed,
                message=self.change.message,
            )
        )
        self.known.race = race
        self.verdict, self.answer, self.written = None, None, False
