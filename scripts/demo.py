"""`make demo`: one working week, both ways: five people's Outlook calendars reaching the planning board,
and the planner's appointments landing in their calendars, offline.

Everything runs on this machine: a real Azurite, loopback simulators of Microsoft Graph and
Dime.Scheduler (tests/fakes), and the local runner (tests/runner.py), which serves the real HTTP
functions, feeds the real queue functions from Azurite per host.json and fires the timers. The
function code is the deployed code, unchanged.

The story: five people are onboarded through the admin API (PUT /api/manage/resources/{mailbox})
with different consent; their week happens in Outlook (meetings, edits, cancellations, private
appointments, all-day absences, a daily stand-up series with one moved instance, a weekly
meeting, free-time blocks). Graph notifies every change three times (a series on its master
only), throttles now and then, and Dime.Scheduler has a short outage. Meanwhile a planner plans
the week on the planning board (appointments for all five, a move, a reassignment, a
cancellation), which Dime.Scheduler publishes twice each, shuffled, to the hooks the app registered
(PUT /api/manage/dime/hooks). Ben then moves one of the planner's events in Outlook, and the app
puts it back (DIME_OUTLOOK_EDITS=revert). At the end the retry, delta and reconcile timers run;
the board is checked against what the consent rules predict, and every calendar against the plan:
exit status 0 only if both agree exactly.

    .venv/bin/python scripts/demo.py [--verbose] [--serve]

`--serve` (`make console`) then leaves that world running for the admin console: a few failures
are added (a Dime.Scheduler rejection, an outage's poisoned message, a planner's appointment for
Finn, who is not onboarded), and the console's URL and key are printed; the queues keep being
polled and Graph's notifications delivered, so what is done in the console takes effect (the
timers fire only on demand). Ctrl-C stops it.

Ctrl-C or SIGTERM stops it cleanly: the simulators, the runner and Azurite stop, and Azurite's
temporary folder is removed. Progress is a bar on a terminal, a few plain lines otherwise.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from shared.core.dime_to_outlook.tag import TAG_PROPERTY_ID  # noqa: E402
from shared.core.ids import appointment_guid  # noqa: E402
from shared.core.transactions import Status  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402
from tests.conftest import DIME_API_KEY, TENANT_ID  # noqa: E402
from tests.fakes import FakeDime, FakeGraph  # noqa: E402
from tests.fakes.dime_board import PlanningBoard  # noqa: E402
from tests.runner import LocalRunner, runner_for  # noqa: E402

DEADLINE_SECONDS = 50
FINN = "R-FINN"  # --serve: a resource on the board whose person is not onboarded (unmatched)
DEFAULT_SHOW_AS = ["busy", "tentative", "oof", "workingElsewhere"]
DEFAULT_SENSITIVITY = ["normal", "personal"]


@dataclass
class Person:
    name: str
    consent: dict[str, Any]  # the PUT body (empty: the tenant defaults)
    note: str
    user: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        assert self.user is not None
        return str(self.user["id"])

    @property
    def email(self) -> str:
        assert self.user is not None
        return str(self.user["mail"])

    def allows(self) -> tuple[bool, list[str], list[str]]:
        return (
            self.consent.get("enabled", True),
            self.consent.get("showAs", DEFAULT_SHOW_AS),
            self.consent.get("sensitivities", DEFAULT_SENSITIVITY),
        )


PEOPLE = [
    Person("Ann", {}, "tenant defaults"),
    Person("Ben", {"showAs": ["busy", "oof"]}, "busy and away only"),
    Person("Cleo", {"sensitivities": ["normal", "personal", "private"]}, "shares private (as 'Private appointment')"),
    Person("Dan", {"enabled": False}, "opted out"),
    Person("Eva", {"showAs": [*DEFAULT_SHOW_AS, "free"]}, "shares free time too"),
]


HEADERS = ("person", "own events", "on board", "filtered (reason count)", "planner's", "retried", "failed")
SUMMARY = (
    "{notifications} notifications received, {redelivered} failed deliveries retried by the queue, "
    "{poisoned} poisoned and healed by the retry timer; {writes} Dime.Scheduler writes, "
    "{appointments} appointments on the board; {planned} planned appointments in {events} Outlook events "
    "({publications} publications delivered)."
)


# ------------------------------------------------------------------------------------------- output
def bar(done: int, total: int, label: str, width: int = 30) -> None:
    """A bar redrawn in place on a terminal; into a file or pipe (CI logs), a plain line at each
    quarter instead of carriage returns."""
    percent = 100 * done // max(total, 1)
    if sys.stdout.isatty():
        filled = width * done // max(total, 1)
        sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%  {label[:60]:<60}")
        sys.stdout.flush()
    elif done == total or (4 * done // max(total, 1)) != (4 * (done - 1) // max(total, 1)):
        say(f"   {percent:3d}%  {done}/{total} changes")


def say(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------------------------- the week
class Week:
    """A working week of calendar activity, as (label, action) steps."""

    def __init__(self, graph: FakeGraph, people: list[Person]) -> None:
        self.graph = graph
        self.people = people
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.monday = today + timedelta(days=7 - today.weekday())  # next week's Monday
        self.ids: dict[tuple[str, str], str] = {}  # (person, key) -> event id
        self.steps: list[tuple[str, Callable[[], None]]] = []

    def at(self, day: int, hour: float, minutes: int = 60) -> dict[str, Any]:
        start = self.monday + timedelta(days=day, hours=hour)
        return {
            "start": start.replace(tzinfo=None),
            "end": (start + timedelta(minutes=minutes)).replace(tzinfo=None),
        }

    def all_day(self, day: int, days: int = 1) -> dict[str, Any]:
        start = self.monday + timedelta(days=day)
        return {
            "start": start.replace(tzinfo=None),
            "end": (start + timedelta(days=days)).replace(tzinfo=None),
            "is_all_day": True,
        }

    def create(self, person: Person, key: str, label: str, **fields: Any) -> None:
        def run() -> None:
            event = self.graph.create_event(person.id, **fields)
            self.ids[(person.name, key)] = event["id"]

        self.steps.append((f"{person.name}: {label}", run))

    def series(self, person: Person, key: str, label: str, **fields: Any) -> None:
        def run() -> None:
            master = self.graph.create_series(person.id, **fields)
            self.ids[(person.name, key)] = master["id"]

        self.steps.append((f"{person.name}: {label}", run))

    def move_instance(self, person: Person, key: str, index: int, label: str, **changes: Any) -> None:
        def run() -> None:
            instances = self.graph.instances(person.id, self.ids[(person.name, key)])
            self.graph.update_instance(person.id, instances[index]["id"], **changes)

        self.steps.append((f"{person.name}: {label}", run))

    def edit(self, person: Person, key: str, label: str, **changes: Any) -> None:
        self.steps.append(
            (
                f"{person.name}: {label}",
                lambda: self.graph.update_event(person.id, self.ids[(person.name, key)], **changes),
            )
        )

    def delete(self, person: Person, key: str, label: str) -> None:
        self.steps.append(
            (f"{person.name}: {label}", lambda: self.graph.delete_event(person.id, self.ids[(person.name, key)]))
        )

    def plan(self) -> list[tuple[str, Callable[[], None]]]:
        for p in self.people:
            # A daily stand-up, Monday to Friday: a real series (Graph notifies its master only; the
            # connector expands the master into its five instances).
            self.series(p, "standup", "daily stand-up (series of 5)", subject="Daily stand-up", count=5,
                        **self.at(0, 8.75, 15))  # fmt: skip
            self.create(p, "visit", "site visit Mon", subject="Site visit Acme", **self.at(0, 10, 120))
            self.create(p, "call", "customer call Tue (tentative)", subject="Customer call", show_as="tentative",
                        **self.at(1, 14, 30))  # fmt: skip
            self.create(p, "focus", "focus time Thu (free)", subject="Focus time", show_as="free", **self.at(3, 8, 120))
            self.create(p, "dentist", "dentist Wed (private)", subject="Dentist", sensitivity="private",
                        **self.at(2, 12, 60))  # fmt: skip
            self.create(p, "review", "project review Thu", subject="Project review", **self.at(3, 15, 60))
            self.create(p, "install", "install Fri", subject="Install at Globex", **self.at(4, 11, 180))
            self.create(p, "drinks", "team drinks Fri (personal)", subject="Team drinks", sensitivity="personal",
                        show_as="workingElsewhere", **self.at(4, 16, 90))  # fmt: skip
        ann, ben, cleo, dan, eva = self.people
        self.series(ann, "weekly", "weekly team meeting Tue (series of 4)", subject="Team meeting", pattern="weekly",
                    count=4, **self.at(1, 16, 60))  # fmt: skip
        self.create(eva, "holiday", "holiday Thu-Fri (all day, away)", subject="Holiday", show_as="oof",
                    **self.all_day(3, 2))  # fmt: skip
        self.create(ben, "training", "training Wed (all day, away)", subject="Training", show_as="oof",
                    **self.all_day(2))  # fmt: skip
        self.create(cleo, "home", "working from home Tue", subject="Home office", show_as="workingElsewhere",
                    **self.all_day(1))  # fmt: skip
        for p in self.people:
            self.edit(p, "visit", "site visit moved to Tue 13:00", **self.at(1, 13, 120))
            self.edit(p, "call", "customer call accepted (busy)", show_as="busy", subject="Customer call (confirmed)")
            self.edit(p, "review", "project review cancelled", is_cancelled=True)
            self.move_instance(p, "standup", 2, "Wed stand-up moved to 9:30 (one instance)", **self.at(2, 9.5, 15))
        self.delete(ann, "install", "install Fri deleted")
        self.delete(eva, "install", "install Fri deleted (on holiday)")
        self.edit(cleo, "dentist", "dentist made normal", sensitivity="normal", subject="Dentist (shared)")
        self.edit(ben, "focus", "focus time now busy", show_as="busy")
        self.edit(dan, "visit", "site visit renamed", subject="Site visit Acme (2)")
        self.edit(eva, "focus", "focus time renamed", subject="Deep work")
        return self.steps


def is_ours(event: dict[str, Any]) -> bool:
    """An event the app wrote for a planner appointment (its tag)."""
    return any(p["id"] == TAG_PROPERTY_ID for p in event.get("singleValueExtendedProperties", []))


class PlannerWeek:
    """The planner's side of the same week, on the planning board (published to the hooks)."""

    def __init__(self, board: PlanningBoard, monday: datetime, people: list[Person]) -> None:
        self.board, self.monday, self.people = board, monday, people
        self.guids: dict[str, str] = {}
        self.steps: list[tuple[str, Callable[[], None]]] = []

    def when(self, day: int, hour: float, hours: float) -> tuple[datetime, datetime]:
        start = self.monday + timedelta(days=day, hours=hour)
        return start, start + timedelta(hours=hours)

    def step(self, label: str, action: Callable[[], None]) -> None:
        def run() -> None:
            action()
            self.board.flush()  # Dime.Scheduler posts to the hooks (x2, shuffled)

        self.steps.append((f"Planner: {label}", run))

    def plan(self) -> list[tuple[str, Callable[[], None]]]:
        ann, ben, cleo, dan, eva = (f"R-{p.name.upper()}" for p in self.people)
        orders = [
            ("heatpump", "Install heat pump, Acme", [ben, cleo], 0, 13, 3),
            ("boiler", "Boiler service, Globex", [ann], 1, 9, 2),
            ("survey", "Site survey, Initech", [dan], 1, 10, 2),
            ("repair", "Repair, Umbrella", [eva], 2, 8, 2),
            ("audit", "Safety audit, Hooli", [ann, dan], 2, 14, 2),
            ("commission", "Commissioning, Acme", [cleo], 3, 9, 4),
            ("handover", "Handover, Globex", [ben], 4, 8, 1),
            ("inspection", "Inspection, Stark", [eva, cleo], 0, 15, 2),
        ]
        for key, subject, resources, day, hour, hours in orders:
            start, end = self.when(day, hour, hours)

            def plan(key: str = key, subject: str = subject, r: list[str] = resources, s: Any = start, e: Any = end):
                self.guids[key] = self.board.plan(subject, s, e, r, body="Planned work", category="Installation")

            self.step(f"plans '{subject}' for {', '.join(x[2:].title() for x in resources)}", plan)
        self.step("moves 'Boiler service' to Wed 10:00", lambda: self.board.update(
            self.guids["boiler"], start=self.when(2, 10, 2)[0], end=self.when(2, 10, 2)[1]))  # fmt: skip
        self.step("reassigns 'Repair, Umbrella' from Eva to Ann",
                  lambda: self.board.update(self.guids["repair"], resources=[ann]))  # fmt: skip
        self.step("cancels 'Site survey, Initech'", lambda: self.board.delete(self.guids["survey"]))
        return self.steps


def calendar_problems(board: PlanningBoard, graph: FakeGraph, people: list[Person]) -> tuple[list[str], list[int]]:
    """Every calendar holds exactly one event per appointment planned for its person, as planned."""
    problems, counts = [], []
    for person in people:
        number = f"R-{person.name.upper()}"
        wanted = {g: p for g, p in board.appointments.items() if number in p.resources}
        seen: dict[str, list[dict[str, Any]]] = {}
        for event in graph.events(person.id):
            if is_ours(event):
                tag = next(p["value"] for p in event["singleValueExtendedProperties"] if p["id"] == TAG_PROPERTY_ID)
                seen.setdefault(tag.split("|")[0], []).append(event)
        counts.append(sum(len(v) for v in seen.values()))
        for guid in set(seen) - set(wanted):
            problems.append(f"{person.name}: {seen[guid][0]['subject']!r} is in Outlook but no longer planned")
        for guid, planned in wanted.items():
            events = seen.get(guid, [])
            if len(events) != 1:
                problems.append(f"{person.name}: {len(events)} Outlook events for {planned.subject!r}")
                continue
            start = datetime.fromisoformat(events[0]["start"]["dateTime"][:19]).replace(tzinfo=UTC)
            if (events[0]["subject"], start) != (planned.subject, planned.start):
                problems.append(f"{person.name}: {planned.subject!r} differs from the plan in Outlook")
    return problems, counts


# ------------------------------------------------------------------------------------------- prediction
def predict(person: Person, event: dict[str, Any], now: datetime) -> str | None:
    """Why this event must NOT be on the board (a reason), or None when it must be."""
    enabled, show_as, sensitivities = person.allows()
    start = datetime.fromisoformat(event["start"]["dateTime"][:19]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(event["end"]["dateTime"][:19]).replace(tzinfo=UTC)
    if not enabled:
        return "opted out"
    if event["isCancelled"]:
        return "cancelled"
    if event["type"] == "seriesMaster":
        return "series master"
    if event["showAs"] not in show_as:
        return "show-as"
    if event["sensitivity"] not in sensitivities:
        return "sensitivity"
    if end <= now - timedelta(days=30) or start >= now + timedelta(days=180):
        return "outside window"
    return None


def expected_appointment(person: Person, event: dict[str, Any]) -> dict[str, str]:
    start = datetime.fromisoformat(event["start"]["dateTime"][:19]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(event["end"]["dateTime"][:19]).replace(tzinfo=UTC)
    private = event["sensitivity"] in ("private", "confidential")
    return {
        "Subject": "Private appointment" if private else event["subject"],
        "Start": start.strftime("%Y-%m-%d %H:%M:%SZ"),
        "End": end.strftime("%Y-%m-%d %H:%M:%SZ"),
        "ResourceEmail": person.email,
    }


# ------------------------------------------------------------------------------------------- running
def settle(runner: LocalRunner, graph: FakeGraph, timeout: float = 20.0) -> None:
    """Wait until Graph has sent everything and every queue is empty (twice in a row)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        graph.flush_notifications()
        busy = sum(runner.queue_depths().values())
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 2:
            return
        time.sleep(0.2)
    raise TimeoutError("the queues did not empty in time")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make demo",
        description="A working week of five people's Outlook calendars reaching the Dime.Scheduler planning "
        "board, offline (Azurite, loopback Graph and Dime.Scheduler simulators, the local runner). "
        "Exit status 0 when the board matches what each person's consent predicts.",
    )
    parser.add_argument("--verbose", action="store_true", help="show the app's log lines")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="afterwards keep the world running for the admin console (make console): add a few failures, "
        "print the console's URL and key, stop on Ctrl-C",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started (Azurite included)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even if started with SIGINT ignored
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL)
    started = time.monotonic()
    say("Outlook -> Dime.Scheduler, offline: Azurite + simulated Graph and Dime.Scheduler + the local runner")
    client = httpx.Client()
    httpx.post = client.post  # the simulators' deliveries reuse one HTTP client (fast handshakes)
    azurite = start_azurite()
    try:
        graph = FakeGraph(tenant_id=TENANT_ID, seed=2026, auto_notify=True, notify_duplicates=3, notify_reorder=True)
        graph.resource_spelling = "rotate"  # every documented spelling of `resource`, in turn
        board = PlanningBoard(duplicates=2, reorder=True, seed=2026)
        if args.serve:  # on the board from the start (the app reads its resource list at most once a minute)
            board.add_resource(FINN, "finn@contoso.com", name="Finn")
        with graph, FakeDime(api_key=DIME_API_KEY, board=board) as dime:
            runner = runner_for(azurite, graph, dime)
            with runner:
                code = run(runner, graph, dime, started)
                return serve(runner, graph, dime) if args.serve else code
    finally:
        azurite.stop()
        client.close()


def run(runner: LocalRunner, graph: FakeGraph, dime: FakeDime, started: float) -> int:
    say(
        f"  runner on {runner.origin}, Graph simulator on {graph.base_url}, Dime.Scheduler simulator on {dime.base_url}"
    )
    say("\n1. Onboarding five people (PUT /api/manage/resources/{mailbox}):")
    for person in PEOPLE:
        person.user = graph.add_user(
            mail=f"{person.name.lower()}@contoso.com",
            upn=f"{person.name.lower()}@contoso.onmicrosoft.com",
            display_name=person.name,
        )
        status, body = runner.request("PUT", f"manage/resources/{person.user['userPrincipalName']}", person.consent)
        if status not in (200, 201):
            say(f"   {person.name}: HTTP {status} {body}")
            return 1
        subscribed = "subscribed" if body.get("subscription") else "no subscription"
        say(f"   {person.name:<5} HTTP {status}  {person.note:<45} {subscribed}")
        dime.board.add_resource(f"R-{person.name.upper()}", person.email, name=person.name)
    status, body = runner.request("PUT", "manage/dime/hooks")
    say(f"   Dime.Scheduler hooks (PUT /api/manage/dime/hooks): HTTP {status}, {len(body['created'])} registered")
    runner.drain()
    runner.start_polling(interval=0.05)

    week = Week(graph, PEOPLE)
    personal = week.plan()
    planner = PlannerWeek(dime.board, week.monday, PEOPLE).plan()
    steps = []
    for n, step in enumerate(personal):  # the planner works while people fill their calendars
        steps.append(step)
        if n % 6 == 5 and planner:
            steps.append(planner.pop(0))
    steps += planner
    outage = range(len(steps) * 2 // 3, len(steps) * 2 // 3 + 6)
    say(f"\n2. Replaying the week of {week.monday:%a %d %b %Y}: {len(personal)} calendar changes, each notified x3,")
    say(f"   and {len(steps) - len(personal)} planner actions, each published x2 (shuffled);")
    say("   Graph throttles 10% of requests; Dime.Scheduler has an outage during 6 changes.")
    graph.fault_rate(0.1, statuses=(429, 503), seed=1)
    for n, (label, action) in enumerate(steps, 1):
        down = n - 1 in outage
        if n - 1 == outage.start:
            dime.fault_rate(1.0, statuses=(503,), seed=2)
        action()
        graph.flush_notifications()
        bar(n, len(steps), f"Dime.Scheduler down! {label}" if down else label)
        if n - 1 == outage.stop - 1:
            settle(runner, graph)  # every delivery during the outage failed: poisoned, kept as failures
            dime.clear_faults()
        time.sleep(0.02)
    settle(runner, graph)
    graph.clear_faults()
    say("\n\n3. Timers: retry (failed transactions, backoff elapsed), delta (anything missed), reconcile.")
    runner.clock.advance(timedelta(hours=7))
    runner.fire("retry_failed")
    settle(runner, graph)
    dime.board.retry_deliveries()
    settle(runner, graph)
    if runner.has_timer("delta_timer"):
        runner.fire("delta_timer")
        settle(runner, graph)
    runner.fire("dime_reconcile_timer")
    settle(runner, graph)
    revert = fiddle(runner, graph)
    runner.stop_polling()
    return report(runner, graph, dime, started, revert)


def serve(runner: LocalRunner, graph: FakeGraph, dime: FakeDime) -> int:
    """`make console`: a few failures for the console to show, then the world keeps running (queues
    polled, Graph's notifications delivered) until Ctrl-C or SIGTERM, which is a normal stop (0)."""
    say("\n6. For the console: a few things that need a person.")
    graph.notify_duplicates, graph.notify_reorder = 1, False  # one delivery each: each failure happens once
    runner.start_polling(interval=0.1)
    ann, ben = PEOPLE[0], PEOPLE[1]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    wednesday = (today + timedelta(days=9 - today.weekday())).replace(tzinfo=None)  # next week's (Graph: naive UTC)
    dime.fail_next(count=1, status=400, path_contains="/import")
    graph.create_event(ann.id, subject="Quarterly review", start=wednesday + timedelta(hours=15),
                       end=wednesday + timedelta(hours=16))  # fmt: skip
    settle(runner, graph)
    say("   Ann's 'Quarterly review': Dime.Scheduler rejects it (400): a failed transaction waiting for a person.")
    dime.fault_rate(1.0, statuses=(503,), seed=3)
    graph.create_event(ben.id, subject="Customer workshop", start=wednesday + timedelta(hours=10),
                       end=wednesday + timedelta(hours=12))  # fmt: skip
    settle(runner, graph, timeout=60)
    dime.clear_faults()
    say("   Ben's 'Customer workshop': Dime.Scheduler is down for all 5 deliveries: poisoned, a failed transaction")
    say("   with 5 attempts (retry it from the console; the retry timer fires only on demand here).")
    graph.add_user(mail="finn@contoso.com", upn="finn@contoso.onmicrosoft.com", display_name="Finn")
    planned = wednesday.replace(tzinfo=UTC)
    dime.board.plan("Boiler service, Wayne", planned + timedelta(hours=8), planned + timedelta(hours=10),
                    [FINN], body="Planned work", category="Installation")  # fmt: skip
    dime.board.flush()
    settle(runner, graph)
    say("   The planner books Finn, who is not onboarded: unmatched (onboard finn@contoso.com on People to place it).")
    say(f"\nThe console: {runner.origin}/api/console/")
    say(f"Sign in with the management key: {runner.management_key}")
    say("Everything keeps running (Azurite, the simulators, the runner); Ctrl-C stops it.")
    try:
        while True:
            if runner.poller_error is not None:
                raise runner.poller_error
            graph.flush_notifications()
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("\nstopping: simulators, runner and Azurite")
        return 0


def fiddle(runner: LocalRunner, graph: FakeGraph) -> str | None:
    """Ben drags one of the planner's events to the evening in Outlook; the app puts it back."""
    ben = PEOPLE[1]
    mine = [e for e in graph.events(ben.id) if is_ours(e)]
    if not mine:
        return None
    event = mine[0]
    planned_at = event["start"]["dateTime"][11:16]
    evening = datetime.fromisoformat(event["start"]["dateTime"][:10]).replace(hour=19)
    graph.update_event(ben.id, event["id"], start=evening, end=evening + timedelta(hours=1))
    settle(runner, graph)
    after = graph.get_event(ben.id, event["id"])
    back_at = after["start"]["dateTime"][11:16] if after else "gone"
    say(f"\n4. Ben moves the planner's {event['subject']!r} from {planned_at} to 19:00 in Outlook;")
    say(f"   the app writes the planner's version back (DIME_OUTLOOK_EDITS=revert): it is at {back_at} again.")
    return None if back_at == planned_at else f"Ben's move of {event['subject']!r} was not reverted ({back_at})"


def outlook_events(graph: FakeGraph, person: Person) -> list[dict[str, Any]]:
    """Single events, series masters and every instance of each series."""
    out = []
    for event in graph.events(person.id):
        out.append(event)
        if event["type"] == "seriesMaster":
            out.extend(graph.instances(person.id, event["id"]))
    return out


def report(runner: LocalRunner, graph: FakeGraph, dime: FakeDime, started: float, revert: str | None) -> int:
    board = dime.appointments
    now = runner.clock()
    problems: list[str] = [revert] if revert else []
    rows = []
    plan_problems, planned_counts = calendar_problems(dime.board, graph, PEOPLE)
    problems += plan_problems
    for person, planned in zip(PEOPLE, planned_counts, strict=True):
        events = [e for e in outlook_events(graph, person) if not is_ours(e)]  # the planner's are never imported
        reasons: Counter[str] = Counter()
        on_board = 0
        for event in events:
            guid = appointment_guid(TENANT_ID, person.id, event["id"])
            reason = predict(person, event, now)
            if reason:
                reasons[reason] += 1
                if guid in board:
                    problems.append(f"{person.name}: {event['subject']!r} is on the board but should not be ({reason})")
                continue
            if guid not in board:
                problems.append(f"{person.name}: {event['subject']!r} is missing from the board")
                continue
            on_board += 1
            want = expected_appointment(person, event)
            wrong = {k: (board[guid].get(k), v) for k, v in want.items() if board[guid].get(k) != v}
            if wrong:
                problems.append(f"{person.name}: {event['subject']!r} differs (board, expected): {wrong}")
        transactions = list(runner.services.store.transactions_of(person.id))
        healed = len({t.event_id for t in transactions if t.status is Status.SUCCEEDED and t.attempts > 1})
        still_failed = sum(1 for t in transactions if t.status is Status.FAILED)
        filtered = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())) or "-"
        rows.append((person.name, len(events), on_board, filtered, planned, healed, still_failed))
    known = {appointment_guid(TENANT_ID, p.id, e["id"]) for p in PEOPLE for e in outlook_events(graph, p)}
    problems += [f"unknown appointment on the board: {guid}" for guid in sorted(set(board) - known)]

    headers = HEADERS
    table = [headers, *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    say("\n5. Summary")
    for i, row in enumerate(table):
        say(("   " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row))).rstrip())
        if i == 0:
            say("   " + "-+-".join("-" * w for w in widths))
    redelivered = sum(r.failed for r in runner.drained.runs.values())
    poisoned = sum(r.poisoned for r in runner.drained.runs.values())
    notifications = sum(len(d.payload.get("value", [])) for d in graph.deliveries if d.kind == "notification")
    summary = SUMMARY.format(
        notifications=notifications,
        redelivered=redelivered,
        poisoned=poisoned,
        writes=dime.writes,
        appointments=len(board),
        planned=len(dime.board.appointments),
        events=sum(planned_counts),
        publications=len(dime.board.delivered),
    )
    say("\n   " + summary)
    say("   planner's = the planner's appointments in that calendar; retried = events whose failed write was healed")
    say("   by the retry timer; failed = transactions still open.")
    seconds = time.monotonic() - started
    if problems:
        say(f"\nFAIL: the board or a calendar does not match what is expected ({len(problems)} problem(s)):")
        for problem in problems[:20]:
            say("   " + problem)
        return 1
    say(
        f"\nOK: the board matches what each person's consent predicts, and every calendar the plan, exactly "
        f"({seconds:.0f} s)."
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: simulators, runner and Azurite stopped", file=sys.stderr)
        sys.exit(130)
