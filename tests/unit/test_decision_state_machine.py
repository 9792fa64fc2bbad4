"""A property-based state machine over the pure decision core (as vdirsyncer tests its sync).

Hypothesis plays a person's Outlook calendar (creates, content edits, changeKey-only touches, moves,
show-as and sensitivity changes, cancellations, deletes), the person's consent, the sync window moving
with the days, and sync runs in any order. A sync here is the core's own steps executed against a
model board: `DeltaState.fresh_round_due` decides between a full listing and a delta page, `read_page`
and `change_key_of` read that page (partial items, duplicates, `@removed`), every event it names is
read in full and decided by `decide`, and the decision is executed on the model (one board entry and
one link per event). After every sync:

* the board holds exactly the events consent and window allow, each with its current content;
* links exist exactly for what is on the board, with the event's changeKey;
* no DELETE without a link, no UPSERT of a refused event, and a RELINK only for unchanged content;
* a second sync in a row writes nothing.

Deterministic in CI: derandomized (the examples follow from the test's name), no example database,
a fixed budget (100 runs of up to 30 steps) that runs in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shared.core.consent import SENSITIVITY_VALUES, SHOW_AS_VALUES, Consent
from shared.core.decision import Action, decide, refusal
from shared.core.events import Event
from shared.core.ids import appointment_guid
from shared.core.links import OUTLOOK_ORIGIN, Link
from shared.core.outlook_to_dime.appointments import appointment_for
from shared.core.outlook_to_dime.delta import DeltaState, Window, change_key_of, read_page

TENANT, MAILBOX, EMAIL = "tenant", "mailbox", "jane@contoso.com"
DAY0 = datetime(2026, 11, 23, tzinfo=UTC)
DAYS_BACK, DAYS_FORWARD = 2, 5
TYPES = ("singleInstance", "occurrence", "exception", "seriesMaster")


def content_hash(event: Event) -> str:
    return appointment_for(event, guid_of(event.id), EMAIL, private_details=False, zone=UTC).content_hash()


def guid_of(event_id: str) -> str:
    return appointment_guid(TENANT, MAILBOX, event_id)


@dataclass
class SyncReport:
    writes: int  # board writes (upserts and deletes)
    actions: list[Action]


class DecisionMachine(RuleBasedStateMachine):
    """Outlook (the truth), the board and links (what the sync made of it), and the delta state."""

    @initialize(
        enabled=st.booleans(),
        show_as=st.frozensets(st.sampled_from(SHOW_AS_VALUES)),
        sensitivities=st.frozensets(st.sampled_from(SENSITIVITY_VALUES)),
    )
    def start(self, enabled: bool, show_as: frozenset[str], sensitivities: frozenset[str]) -> None:
        self.outlook: dict[str, Event] = {}
        self.board: dict[str, str] = {}  # appointment GUID → content hash written
        self.links: dict[str, Link] = {}  # event id → link
        self.consent = Consent(enabled, show_as, sensitivities)
        self.today = DAY0
        self.delta = DeltaState()
        self.changed: list[tuple[str, bool]] = []  # (event id, removed) since the last delta page
        self.consent_changed = False
        self.next_id = 0
        self.version = 0

    # Outlook ------------------------------------------------------------------------------------

    def _key(self) -> str:
        self.version += 1
        return f"ck-{self.version}"

    def _ids(self) -> list[str]:
        return sorted(self.outlook)

    def _changed(self, event_id: str, *, removed: bool = False) -> None:
        self.changed.append((event_id, removed))

    @rule(
        day=st.integers(-4, 8),
        hours=st.integers(1, 30),
        show_as=st.sampled_from(SHOW_AS_VALUES),
        sensitivity=st.sampled_from(SENSITIVITY_VALUES),
        kind=st.sampled_from(TYPES),
        subject=st.sampled_from(["Visit", "Repair", "Sick", ""]),
    )
    def create(self, day: int, hours: int, show_as: str, sensitivity: str, kind: str, subject: str) -> None:
        self.next_id += 1
        event_id = f"e{self.next_id}"
        start = DAY0 + timedelta(days=day, hours=8)
        self.outlook[event_id] = Event(
            id=event_id,
            change_key=self._key(),
            ical_uid=f"uid-{event_id}",
            subject=subject,
            body="",
            start=start,
            end=start + timedelta(hours=hours),
            is_all_day=False,
            show_as=show_as,
            sensitivity=sensitivity,
            importance="normal",
            categories=(),
            is_cancelled=False,
            type=kind,
        )
        self._changed(event_id)

    def _edit(self, index: int, **changes: Any) -> None:
        ids = self._ids()
        event_id = ids[index % len(ids)]
        self.outlook[event_id] = replace(self.outlook[event_id], change_key=self._key(), **changes)
        self._changed(event_id)

    @precondition(lambda self: self.outlook)
    @rule(index=st.integers(0, 50), subject=st.sampled_from(["Visit", "Visit 2", "Moved", "x"]))
    def edit_subject(self, index: int, subject: str) -> None:
        self._edit(index, subject=subject)

    @precondition(lambda self: self.outlook)
    @rule(index=st.integers(0, 50))
    def touch(self, index: int) -> None:
        """A new changeKey, the same content (Outlook does this, e.g. when a reminder fires)."""
        self._edit(index)

    @precondition(lambda self: self.outlook)
    @rule(index=st.integers(0, 50), days=st.integers(-6, 6))
    def move(self, index: int, days: int) -> None:
        event = self.outlook[self._ids()[index % len(self.outlook)]]
        self._edit(index, start=event.start + timedelta(days=days), end=event.end + timedelta(days=days))

    @precondition(lambda self: self.outlook)
    @rule(index=st.integers(0, 50), show_as=st.sampled_from(SHOW_AS_VALUES))
    def change_show_as(self, index: int, show_as: str) -> None:
        self._edit(index, show_as=show_as)

    @precondition(lambda self: self.outlook)
    @rule(index=st.integers(0, 50), sensitivity=st.sampled_from(SENSITIVITY_VALUES))
    def change_sensitivity(self, index: int, sensitivity: str) -> None:
        self._edit(index, sensitivity=sensitivity)

    @precondition(lambda self: self.outlook)
    @rule(index=st.integers(0, 50))
    def cancel(self, index: int) -> None:
        self._edit(index, is_cancelled=True)

    @precondition(lambda self: self.outlook)
    @rule(index=st.integers(0, 50))
    def delete(self, index: int) -> None:
        event_id = self._ids()[index % len(self.outlook)]
        del self.outlook[event_id]
        self._changed(event_id, removed=True)

    # The person's consent and the days -----------------------------------------------------------

    @rule(
        enabled=st.booleans(),
        show_as=st.frozensets(st.sampled_from(SHOW_AS_VALUES)),
        sensitivities=st.frozensets(st.sampled_from(SENSITIVITY_VALUES)),
    )
    def change_consent(self, enabled: bool, show_as: frozenset[str], sensitivities: frozenset[str]) -> None:
        """The console saves a consent and starts a resync of the mailbox (a full listing)."""
        self.consent = Consent(enabled, show_as, sensitivities)
        self.consent_changed = True

    @rule(days=st.integers(1, 3))
    def days_pass(self, days: int) -> None:
        self.today += timedelta(days=days)

    # Sync -----------------------------------------------------------------------------------------

    def _window(self) -> Window:
        return Window.around(self.today, DAYS_BACK, DAYS_FORWARD)

    def _page(self, full: bool) -> dict[str, Any]:
        """What Graph answers: a full listing of the window's events, or the changes since the last
        page as partial items (the id and the etag only), in order, with duplicates and `@removed`."""
        if full:
            window = self._window()
            items = [
                {"id": e.id, "@odata.etag": f'W/"{e.change_key}"'}
                for e in self.outlook.values()
                if e.end > window.start and e.start < window.end
            ]
        else:
            items = [
                {"id": event_id, "@removed": {"reason": "deleted"}}
                if removed
                else {"id": event_id, "@odata.etag": f'W/"{self.outlook[event_id].change_key}"'}
                for event_id, removed in self.changed
                if removed or event_id in self.outlook
            ]
        return {"value": items, "@odata.deltaLink": f"delta-{self.version}"}

    def _sync(self) -> SyncReport:
        window = self._window()
        reason = self.delta.fresh_round_due(self.today, window)
        full = reason is not None or self.consent_changed
        if full:
            self.delta = self.delta.start_fresh(self.today, window)
        page = read_page(self._page(full))
        named = [item["id"] for item in page.events] + page.removed
        assert len(named) == len(set(named))  # read_page de-duplicates
        for item in page.events:
            assert change_key_of(item) == self.outlook[item["id"]].change_key
        if full:
            # A full listing names only what is in the window: the linked ones it did not list are
            # read by id too (gone, or outside the window now), as the fresh round's sweep does.
            named += [event_id for event_id in sorted(self.links) if event_id not in named]
        report = SyncReport(0, [])
        bounds = (window.start, window.end)
        for event_id in named:
            event = self.outlook.get(event_id)  # read in full: None when gone
            link = self.links.get(event_id)
            current = content_hash(event) if event is not None else None
            decision = decide(event, link, self.consent, bounds, current)
            report.actions.append(decision.action)
            report.writes += self._execute(event_id, event, link, current, decision.action, bounds)
        self.delta = self.delta.finished(page.delta_link or "")
        self.changed = []
        self.consent_changed = False
        return report

    def _execute(
        self,
        event_id: str,
        event: Event | None,
        link: Link | None,
        current: str | None,
        action: Action,
        window: tuple[datetime, datetime],
    ) -> int:
        guid = guid_of(event_id)
        if action is Action.DELETE:
            assert link is not None, "a DELETE without a link"
            del self.board[guid], self.links[event_id]
            return 1
        if action is Action.UPSERT:
            assert event is not None and refusal(event, self.consent, window) is None, "an UPSERT of a refused event"
            self.board[guid] = current or ""
            self.links[event_id] = Link(
                MAILBOX, event_id, guid, OUTLOOK_ORIGIN, event.change_key, current, EMAIL, "now"
            )
            return 1
        if action is Action.RELINK:
            assert link is not None and event is not None and link.content_hash == current
            self.links[event_id] = replace(link, change_key=event.change_key)
        return 0

    @rule()
    def sync(self) -> None:
        self._sync()
        self._board_is_exactly_the_allowed_events()
        again = self._sync()
        assert again.writes == 0, "a second sync in a row wrote"
        assert set(again.actions) <= {Action.SKIP}, again.actions

    def _board_is_exactly_the_allowed_events(self) -> None:
        window = self._window()
        allowed = {
            guid_of(e.id): content_hash(e)
            for e in self.outlook.values()
            if refusal(e, self.consent, (window.start, window.end)) is None
        }
        assert self.board == allowed
        assert {guid_of(event_id) for event_id in self.links} == set(self.board)
        for event_id, link in self.links.items():
            assert link.change_key == self.outlook[event_id].change_key

    @invariant()
    def nothing_on_the_board_without_a_link(self) -> None:
        if hasattr(self, "links"):
            assert set(self.board) == {link.appointment_guid for link in self.links.values()}


DecisionMachine.TestCase.settings = settings(
    derandomize=True,
    database=None,
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDecisionMachine = DecisionMachine.TestCase


def test_the_machine_catches_a_decision_that_forgets_the_consent(monkeypatch):
    """The machine is not vacuous: with the consent check taken out of `refusal` as `decide` sees
    it (the model's own expectation keeps the real one), a run fails."""
    import shared.core.decision as decision

    original = decision.refusal
    everything = Consent(True, frozenset(SHOW_AS_VALUES), frozenset(SENSITIVITY_VALUES))

    def no_consent(event: Event, consent: Consent, window: tuple[datetime, datetime]) -> str | None:
        return original(event, everything, window)

    monkeypatch.setattr(decision, "refusal", no_consent)
    quick = settings(derandomize=True, database=None, max_examples=100, deadline=None, phases=[Phase.generate])
    with pytest.raises(AssertionError):
        run_state_machine_as_test(DecisionMachine, settings=quick)
