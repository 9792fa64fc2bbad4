"""What forged input costs: a notification POST of 1 MiB, and a publications POST of the maximum size.

Notifications: the attacker has the function key but not CLIENT_STATE_SECRET: well-formed items
with a wrong clientState, as change items and as lifecycle items (which carry no `resource`);
median and worst answer times. Second table: a caller who also holds one mailbox's real
clientState (it rides on every notification) posts 1,000 items with random subscription ids,
three times: the table reads each POST costs and the stray deletions it schedules (each one a
Graph DELETE in the lifecycle worker).

Publications (`measure_publications`): the attacker holds the publications key, so every item is
accepted and queued: MAX_ITEMS appointments (inbound.py) × 100 assignments (the most an
appointment may carry) naming real resource numbers with victims' e-mails, forged numbers, bare
e-mails of tenant mailboxes, and directory resources nobody onboarded; one POST through the HTTP
function, then the queue worker until the queue is empty. Every request is counted: Graph and
Dime.Scheduler at the fakes, table and queue round trips at the storage SDK's transport
(tests/storage_counter.py), with the events written into the victims' calendars (must be 0).

Runs against a real Azurite and the loopback fakes. Self-contained (only function_app and tests/),
so the same script measures an older checkout too (`--appointments 1` there: the old code looked
every victim's e-mail up in Graph):

    .venv/bin/python scripts/bench_forged.py [--appointments N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402

import function_app  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402
from tests.conftest import TENANT_ID, clean_storage, make_services, settings_env  # noqa: E402

MIB = 1024 * 1024


def forged_state(mailbox: str) -> str:
    """The shape of a real clientState (an attacker has seen one), with a wrong HMAC: every item
    costs the full check."""
    return f"{mailbox}.{'f' * 64}"


def forged_change(i: int) -> dict:
    mailbox = f"0b1c2d3e-0000-4000-8000-{i:012d}"
    resource = f"Users/{mailbox}/Events/AAMkAD{i:08d}="
    return {
        "subscriptionId": f"00000000-0000-4000-8000-{i:012d}",
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
        "clientState": forged_state(mailbox),
        "changeType": "updated",
        "resource": resource,
        "tenantId": TENANT_ID,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource, "id": f"AAMkAD{i:08d}="},
    }


def forged_lifecycle(i: int) -> dict:
    return {
        "subscriptionId": f"00000000-0000-4000-8000-{i:012d}",
        "subscriptionExpirationDateTime": "2026-11-29T00:00:00Z",
        "clientState": forged_state(f"0b1c2d3e-0000-4000-8000-{i:012d}"),
        "lifecycleEvent": "missed",
        "tenantId": TENANT_ID,
    }


def body_of(make, limit_bytes: int = MIB, max_items: int | None = None) -> tuple[bytes, int]:
    """As many forged items as fit in `limit_bytes` (or `max_items`)."""
    items: list[dict] = []
    size = len(b'{"value": []}')
    while max_items is None or len(items) < max_items:
        item = make(len(items))
        grow = len(json.dumps(item).encode()) + 2
        if size + grow > limit_bytes:
            break
        items.append(item)
        size += grow
    return json.dumps({"value": items}).encode(), len(items)


def answer_times(body: bytes, repeats: int) -> tuple[float, float, int]:
    times, status = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body))
        times.append(time.perf_counter() - started)
        status = response.status_code
    return statistics.median(times) * 1000, max(times) * 1000, status


def measure(repeats: int = 5) -> list[tuple[str, int, int, float, float, int]]:
    import logging

    logging.disable(logging.WARNING)  # the refusals' log lines are not the figure
    azurite = start_azurite()
    try:
        services = make_services(settings_env(azurite, "http://127.0.0.1:9/v1.0", "http://127.0.0.1:9"))
        clean_storage(services)
        function_app.services = lambda: services
        rows = []
        for label, make, max_items in (
            ("change items, 1 MiB", forged_change, None),
            ("lifecycle items (no resource), 1 MiB", forged_lifecycle, None),
            ("change items, 1,000 (the item cap)", forged_change, 1000),
            ("lifecycle items (no resource), 1,000", forged_lifecycle, 1000),
        ):
            body, count = body_of(make, max_items=max_items)
            median, worst, status = answer_times(body, repeats)
            rows.append((label, len(body), count, median, worst, status))
        return rows
    finally:
        azurite.stop()
        logging.disable(logging.NOTSET)


ASSIGNMENTS = 100
ONBOARDED = ("jane", "tom")  # onboarded here, in Dime.Scheduler's directory (R-JANE, R-TOM)
BYSTANDERS = 20  # in the directory with Exchange integration on, nobody onboarded them (R-BY-n)
VICTIMS = 200  # tenant mailboxes (Graph knows them) nobody onboarded and the directory does not hold


def forged_appointment(n: int, assignments: int = ASSIGNMENTS) -> dict:
    """One appointment whose every assignment is an attempt to reach a mailbox it should not."""
    items: list[dict] = []
    for k in range(assignments):
        victim = f"victim{(n * assignments + k) % VICTIMS}@contoso.com"
        kind = k % 4
        if kind == 0:  # a real number, a victim's e-mail: email-mismatch
            items.append({"Resource": {"ResourceNo": f"R-{ONBOARDED[k % 2].upper()}", "Email": victim}})
        elif kind == 1:  # a forged number
            items.append({"Resource": {"ResourceNo": f"R-FORGED-{n}-{k}", "Email": victim}})
        elif kind == 2:  # a bare e-mail of a tenant mailbox
            items.append({"Resource": {"Email": victim}})
        else:  # a directory resource nobody onboarded (written only under DIME_OUTLOOK_TARGETS=directory)
            items.append({"Resource": {"ResourceNo": f"R-BY-{k % BYSTANDERS}"}})
    return {
        "AppointmentGuid": f"6c1b6a2e-0000-4000-8000-{n:012d}",
        "Subject": "Forged",
        "StartDate": "2026-11-24T08:00:00Z",
        "EndDate": "2026-11-24T09:00:00Z",
        "LastModifiedDate": "2026-11-20T08:00:00Z",
        "Assignments": items,
    }


def measure_publications(appointments: int | None = None, targets: str = "onboarded") -> dict:
    """One forged publications POST of `appointments` (default MAX_ITEMS) × 100 assignments, through
    the HTTP function and the queue worker: every request counted, by kind."""
    import logging

    from shared.names import PUBLICATIONS_QUEUE
    from shared.usecases.dime_to_outlook import inbound
    from tests.conftest import DIME_API_KEY, track
    from tests.fakes import FakeDime, FakeGraph
    from tests.host import call_function, run_queue
    from tests.storage_counter import StorageCounter

    count = inbound.MAX_ITEMS if appointments is None else appointments
    counter = StorageCounter.install()
    logging.disable(logging.WARNING)
    azurite = start_azurite()
    try:
        with FakeGraph(tenant_id=TENANT_ID) as graph, FakeDime(api_key=DIME_API_KEY) as dime:
            env = settings_env(azurite, graph.base_url, dime.base_url)
            env["DIME_OUTLOOK_TARGETS"] = targets  # (ignored by a checkout without the setting)
            services = make_services(env)
            clean_storage(services)
            function_app.services = lambda: services
            for name in ONBOARDED:
                track(services, graph.add_user(mail=f"{name}@contoso.com"))
                dime.board.add_resource(f"R-{name.upper()}", f"{name}@contoso.com")
            bystanders = [graph.add_user(mail=f"bystander{k}@contoso.com") for k in range(BYSTANDERS)]
            for k in range(BYSTANDERS):
                dime.board.add_resource(f"R-BY-{k}", f"bystander{k}@contoso.com")
            victims = [graph.add_user(mail=f"victim{k}@contoso.com") for k in range(VICTIMS)]
            body = json.dumps([forged_appointment(n) for n in range(count)]).encode()
            # The app creates its tables and queues on first use: done before counting.
            list(services.store.list_resources())
            services.queues.client(PUBLICATIONS_QUEUE)
            graph.reset_requests()
            dime.reset_calls()
            counter.reset()
            started = time.perf_counter()
            request = func.HttpRequest(
                "POST", "/api/dime/publications/created", body=body, route_params={"change": "created"}
            )
            status = call_function(function_app.dime_publications_change, request).status_code
            answered = time.perf_counter() - started
            run = run_queue(services, PUBLICATIONS_QUEUE, function_app.apply_dime_publication, max_rounds=10_000)
            seconds = time.perf_counter() - started
            storage = counter.by_service()
            return {
                "appointments": count,
                "assignments": count * ASSIGNMENTS,
                "bytes": len(body),
                "status": status,
                "answer_ms": answered * 1000,
                "seconds": seconds,
                "graph": len(graph.requests),
                "dime": len(dime.requests),
                "table": storage.get("table", 0),
                "queue": storage.get("queue", 0),
                "victims": sum(len(graph.events(p["id"])) for p in victims),
                "bystanders": sum(len(graph.events(p["id"])) for p in bystanders),
                "poisoned": run.poisoned,
                "targets": targets,
            }
    finally:
        azurite.stop()
        logging.disable(logging.NOTSET)


def unknown_subscriptions(posts: int = 3, per_post: int = 1000) -> list[tuple[int, int, int, float]]:
    """(status, table requests, stray deletions scheduled, answer ms) per POST of items with a valid
    clientState and random subscription ids."""
    import logging
    import random
    import uuid

    from shared.core.outlook_to_dime.webhook import STRAY_EVENT, client_state_for
    from shared.names import LIFECYCLE_QUEUE
    from shared.usecases.outlook_to_dime import webhook
    from tests.conftest import CLIENT_STATE_SECRET, drain_queue
    from tests.storage_counter import StorageCounter

    webhook.STRAY_DELAY_SECONDS = None  # visible at once, to be counted (paced by a minute in production)
    logging.disable(logging.WARNING)
    azurite = start_azurite()
    try:
        services = make_services(settings_env(azurite, "http://127.0.0.1:9/v1.0", "http://127.0.0.1:9"))
        clean_storage(services)
        services.store.create_tables()
        services.queues.create_queues()  # queue creates would be counted as table requests (one URL shape)
        function_app.services = lambda: services
        mailbox = "0b1c2d3e-0000-4000-8000-000000000001"
        counter = StorageCounter.install()
        rows = []
        for post in range(posts):
            rng = random.Random(post)
            items = []
            for i in range(per_post):
                item = forged_change(i)
                resource = f"Users/{mailbox}/Events/AAMkAD{i:08d}="
                item.update(resource=resource, clientState=client_state_for(mailbox, CLIENT_STATE_SECRET))
                item["resourceData"]["@odata.id"] = resource
                item["subscriptionId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                items.append(item)
            body = json.dumps({"value": items}).encode()
            counter.reset()
            started = time.perf_counter()
            response = function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body))
            elapsed = (time.perf_counter() - started) * 1000
            table = counter.by_service().get("table", 0)
            strays = [m for m in drain_queue(services, LIFECYCLE_QUEUE) if m.get("lifecycleEvent") == STRAY_EVENT]
            rows.append((response.status_code, table, len(strays), elapsed))
        return rows
    finally:
        azurite.stop()
        logging.disable(logging.NOTSET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appointments", type=int, default=None, help="publications row only: this many")
    args = parser.parse_args()
    if args.appointments is None:
        print("forged POST                           | bytes     | items | median ms | max ms | status")
        for label, size, count, median, worst, status in measure():
            print(f"{label:<37} | {size:>9} | {count:>5} | {median:>9.1f} | {worst:>6.1f} | {status}")
        print()
        print(
            "valid clientState, 1,000 random subscription ids | POST | table requests | stray deletes queued | ms"
            " | status"
        )
        for post, (status, table, strays, ms) in enumerate(unknown_subscriptions(), start=1):
            print(f"{'':<48} | {post:>4} | {table:>14} | {strays:>20} | {ms:>4.0f} | {status}")
        print()
    print(
        "forged publications POST (targets)        | bytes     | HTTP | Graph | Dime | table | queue | total"
        " | per appointment | events: victims, bystanders | seconds"
    )
    counts = [args.appointments] if args.appointments is not None else [1, None]
    for appointments in counts:
        for targets in ("onboarded", "directory"):
            r = measure_publications(appointments, targets)
            total = r["graph"] + r["dime"] + r["table"] + r["queue"]
            label = f"{r['appointments']} x {ASSIGNMENTS} assignments ({targets})"
            print(
                f"{label:<41} | {r['bytes']:>9} | {r['status']:>4} | {r['graph']:>5} | {r['dime']:>4} | "
                f"{r['table']:>5} | {r['queue']:>5} | {total:>5} | {total / r['appointments']:>15.1f} | "
                f"{r['victims']:>15}, {r['bystanders']:>10} | {r['seconds']:>7.1f}"
            )


if __name__ == "__main__":
    main()
