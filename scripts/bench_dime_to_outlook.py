"""Dime.Scheduler → Outlook: requests per planner change, the echo cost, and the publication route's answer time.

Real Azurite and the loopback fakes; the functions are called as the host calls them. Two people
are onboarded and are Dime.Scheduler resources with Exchange integration. For each planner
action the script counts the Graph requests and the Dime.Scheduler requests the app made
(including the three notifications Graph sends about each of our own writes, run through the
Outlook → Dime.Scheduler path), and prints them.

    .venv/bin/python scripts/bench_dime_to_outlook.py [--profile loopback|realistic|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402

import function_app  # noqa: E402
from scripts.latency_proxy import routed  # noqa: E402
from shared.core.resources import resource_from_user  # noqa: E402
from shared.names import NOTIFICATIONS_QUEUE, PUBLICATIONS_QUEUE  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402
from tests.conftest import (  # noqa: E402
    DIME_PUBLICATIONS_KEY,
    TENANT_ID,
    clean_storage,
    make_services,
    notification_item,
    settings_env,
)
from tests.fakes import FakeDime, FakeGraph  # noqa: E402
from tests.host import call_function, run_queue  # noqa: E402

ECHOES = 3  # notifications Graph sends about one write


def publication(payload: dict, change: str) -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        f"/api/dime/publications/{change}",
        body=json.dumps(payload).encode(),
        params={"code": DIME_PUBLICATIONS_KEY},
        route_params={"change": change},
    )


def publish(payload: dict, change: str) -> None:
    answer = call_function(function_app.dime_publications_change, publication(payload, change))
    assert answer.status_code == 200, answer.get_body()


def main() -> int:
    parser = argparse.ArgumentParser(description="Dime.Scheduler -> Outlook: requests per planner change")
    parser.add_argument("--profile", choices=["loopback", "realistic", "both"], default="both")
    chosen = parser.parse_args().profile
    profiles = ["loopback", "realistic"] if chosen == "both" else [chosen]
    azurite = start_azurite()
    try:
        for profile in profiles:
            print(f"\n=== profile: {profile} ===")
            run(azurite, profile)
    finally:
        azurite.stop()
    return 0


def run(azurite, profile: str) -> None:
    """Every figure, the services behind the delaying proxies of `profile` (scripts/latency_proxy.py)."""
    with (
        FakeGraph(tenant_id=TENANT_ID) as graph,
        FakeDime() as dime,
        routed(profile, azurite, graph=graph, dime=dime) as storage,
    ):
        services = make_services(settings_env(storage, graph.base_url, dime.base_url))
        clean_storage(services)
        function_app.services = lambda: services
        people = [graph.add_user(mail="jane@contoso.com"), graph.add_user(mail="tom@contoso.com")]
        for person, number in zip(people, ("R-JANE", "R-TOM"), strict=True):
            services.store.put_resource(resource_from_user(person, services.settings.default_consent))
            dime.board.add_resource(number, person["mail"])
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)

        def measure(label: str, action, change: str) -> None:
            graph.reset_requests()
            dime.reset_calls()
            guid = action()
            publish(
                dime.board.payload(dime.board.appointments[guid]) if change != "deleted" else {"AppointmentGuid": guid},
                change,
            )
            run_queue(services, PUBLICATIONS_QUEUE, function_app.apply_dime_publication)
            writes = sum(1 for r in graph.requests if r.method != "GET")
            reads = len(graph.requests) - writes
            dime_requests = len(dime.requests)
            # Graph's notifications about our own writes, through the Outlook -> Dime.Scheduler path.
            graph.reset_requests()
            dime.reset_calls()
            items = []
            for person in people:
                for event in graph.events(person["id"]):
                    items += [notification_item(person["id"], event["id"], "updated", event["changeKey"])] * ECHOES
            if items:
                body = json.dumps({"value": items}).encode()
                function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body))
                run_queue(services, NOTIFICATIONS_QUEUE, function_app.apply_change)
            print(
                f"  {label:<44} Graph {writes} write(s) + {reads} read(s); Dime.Scheduler {dime_requests} "
                f"request(s) | echoes ({len(items)} notifications): Graph {len(graph.requests)}, "
                f"Dime.Scheduler writes {dime.writes}"
            )

        box: dict[str, str] = {}
        print("Requests per planner change (one appointment; onboarded people):")

        def plan() -> str:
            box["guid"] = dime.board.plan("Install", start, start + timedelta(hours=2), ["R-JANE"])
            return box["guid"]

        measure("planned for one resource (cold cache)", plan, "created")

        def move() -> str:
            dime.board.update(box["guid"], start=start + timedelta(hours=3), end=start + timedelta(hours=5))
            return box["guid"]

        measure("moved", move, "updated")

        def reassign() -> str:
            dime.board.update(box["guid"], resources=["R-TOM"])
            return box["guid"]

        measure("reassigned from Jane to Tom", reassign, "updated")
        measure("same publication again (duplicate)", lambda: box["guid"], "updated")

        def second() -> str:
            return dime.board.plan("Service", start, start + timedelta(hours=1), ["R-JANE"])

        measure("another one planned (warm cache)", second, "created")

        def delete() -> str:
            dime.board.delete(box["guid"])
            return box["guid"]

        measure("deleted", delete, "deleted")

        async def answers() -> list[float]:
            """200 POSTs on one event loop, as the host serves them (one loop for the process)."""
            timings = []
            for n in range(200):
                guid = dime.board.plan(f"Order {n}", start, start + timedelta(hours=1), ["R-JANE"])
                request = publication(dime.board.payload(dime.board.appointments[guid]), "created")
                started = time.perf_counter()
                answer = await function_app.dime_publications_change(request)
                timings.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.get_body()
            return sorted(timings)

        timings = asyncio.run(answers())
        print(
            f"Publication route answer (1 appointment per POST, 200 runs): p50 {timings[100] * 1000:.1f} ms, "
            f"p99 {timings[197] * 1000:.1f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
