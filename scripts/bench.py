"""`make bench`: honest figures from one run on one workload, beside the naive design.

Starts a real Azurite and the HTTP fakes of Graph and Dime.Scheduler on loopback, then measures:
the webhook's answer time (for Graph's POSTs, and for 1 MiB of forged items: scripts/bench_forged.py),
the real-time path end to end, Graph requests and Dime.Scheduler writes per distinct change (ours
vs. the naive "one read and one write per notification" of the low-code flow recipes), retrying
1,500 failed transactions through the bulk queue, and the cost of importing `function_app`; then
(scripts/bench_scale.py) the floor of this machine, each figure as a share of it, Azurite round
trips per change (counted at the storage transport), the backfill of 10 mailboxes x 1,000 events,
scale-out over 1, 2 and 4 worker processes, and each fake's cost per request.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402

import function_app  # noqa: E402
from scripts import bench_scale  # noqa: E402
from shared.core.events import event_from_graph  # noqa: E402
from shared.core.ids import appointment_guid  # noqa: E402
from shared.core.outlook_to_dime.appointments import appointment_for, upsert_call  # noqa: E402
from shared.names import NOTIFICATIONS_QUEUE  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402
from tests.conftest import (  # noqa: E402
    MANAGE_HEADERS,
    TENANT_ID,
    clean_storage,
    make_services,
    notification_item,
    settings_env,
    subscription_id_of,
    track,
)
from tests.fakes import FakeDime, FakeGraph  # noqa: E402
from tests.host import call_function, run_queue  # noqa: E402
from tests.linkseed import add_mailbox, seed_linked_events  # noqa: E402
from tests.storage_counter import StorageCounter  # noqa: E402

DUPLICATES = 3  # Graph commonly sends three notifications per edit


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def import_cost() -> tuple[float, float]:
    """Median seconds and peak MiB of a cold `import function_app`, in fresh interpreters."""
    code = (
        "import time, resource; t = time.perf_counter(); import function_app; "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        for _ in range(5)
    ]
    seconds, mib = zip(*(map(float, r.stdout.split()) for r in runs), strict=True)
    return statistics.median(seconds), max(mib)


def post(items: list[dict]) -> float:
    body = json.dumps({"value": items}).encode()
    started = time.perf_counter()
    response = function_app.notifications(func.HttpRequest("POST", "/api/notifications", body=body))
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.get_body()
    return elapsed


def bench_webhook(services, posts: int) -> dict:
    """p50 / p99 of the webhook's answer for 1 and 20 notifications per POST, each POST preceded by
    one raw queue put of the same size class (the SDK's `send_message` on the same client), so the
    POST's tail is read beside the tail of the one put it makes, under the same machine load."""
    from shared.adapters.storage.subscription_rows import SubscriptionRow, save_subscription

    mailbox = "0b1c2d3e-0000-4000-8000-000000000001"
    save_subscription(services.store, SubscriptionRow(subscription_id_of(mailbox), mailbox, "2026-11-29T00:00:00Z"))
    queue = services.queues.client(NOTIFICATIONS_QUEUE)
    message = json.dumps({"mailboxId": mailbox, "eventId": "e" * 150, "changeType": "updated"}).encode()
    figures: dict = {}
    for size in (1, 20):
        times, puts = [], []
        for i in range(posts):
            started = time.perf_counter()
            queue.send_message(message)
            puts.append(time.perf_counter() - started)
            times.append(post([notification_item(mailbox, f"e{i}-{j}") for j in range(size)]))
        figures[size] = (percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000)
        figures[f"put-{size}"] = (percentile(puts, 0.5) * 1000, percentile(puts, 0.99) * 1000)
        queue.clear_messages()
    return figures


def workload(graph: FakeGraph, services, mailboxes: int, changes_per_mailbox: int) -> list[dict]:
    """Creates and then edits events of onboarded people; returns the notifications Graph would
    send (x3 each)."""
    items = []
    for m in range(mailboxes):
        person = graph.add_user(mail=f"tech{m}@contoso.com")
        track(services, person)
        for c in range(changes_per_mailbox):
            event = graph.create_event(
                person["id"], subject=f"Job {c}", start="2026-11-24T08:00:00", end="2026-11-24T09:00:00"
            )
            if c % 2:
                event = graph.update_event(person["id"], event["id"], subject=f"Job {c} (moved)")
            items += [notification_item(person["id"], event["id"], "updated", event["changeKey"])] * DUPLICATES
    return items


def naive_apply(services):
    """The low-code recipe: every notification = one Graph read of the user and one of the event,
    and one Dime.Scheduler write (the notifications of a packed message one after another)."""

    async def handle(msg: func.QueueMessage) -> None:
        message = json.loads(msg.get_body())
        for change in message.get("changes", [message]):
            mailbox, event_id = change["mailboxId"], change["eventId"]
            user = await services.graph.get_user(mailbox)
            event = event_from_graph(await services.graph.get_event(mailbox, event_id))
            guid = appointment_guid(TENANT_ID, mailbox, event_id)
            appointment = appointment_for(
                event, guid, user["mail"], private_details=False, zone=services.settings.dime_zone
            )
            await asyncio.to_thread(services.dime.run_import, [upsert_call(appointment)])

    return handle


def post_workload(graph: FakeGraph, services, mailboxes: int, changes_per_mailbox: int) -> list[str]:
    """The workload, posted to the webhook 20 notifications at a time; returns the mailbox ids."""
    items = workload(graph, services, mailboxes, changes_per_mailbox)
    for start in range(0, len(items), 20):
        post(items[start : start + 20])
    return sorted({item["resource"].split("/")[1] for item in items})


def bench_end_to_end(azurite, mailboxes: int, changes_per_mailbox: int, handler_for) -> dict[str, float]:
    counter = StorageCounter.install()
    with FakeGraph(tenant_id=TENANT_ID) as graph, FakeDime(api_key="test-api-key") as dime:
        services = make_services(settings_env(azurite, graph.base_url, dime.base_url))
        clean_storage(services)
        function_app.services = lambda: services
        items = workload(graph, services, mailboxes, changes_per_mailbox)
        graph.reset_requests()
        dime.reset_calls()
        counter.reset()
        started = time.perf_counter()
        for start in range(0, len(items), 20):
            post(items[start : start + 20])
        run = run_queue(services, NOTIFICATIONS_QUEUE, handler_for(services), max_rounds=1000)
        elapsed = time.perf_counter() - started
        distinct = mailboxes * changes_per_mailbox
        assert run.poisoned == 0 and len(dime.appointments) == distinct, (run.errors[:3], len(dime.appointments))
        storage = counter.by_service()
        return {
            "seconds": elapsed,
            "changes_per_second": distinct / elapsed,
            "graph_per_change": len(graph.requests) / distinct,
            "writes_per_change": dime.writes / distinct,
            "dime_requests_per_change": len(dime.requests) / distinct,
            "table_per_change": storage.get("table", 0) / distinct,
            "queue_per_change": storage.get("queue", 0) / distinct,
            "messages_per_second": len(items) / elapsed,
        }


def bench_reconcile(azurite, links: int = 1000) -> tuple[int, int, int]:
    """Reconcile over `links` unchanged links (seeded as tests/linkseed.py does): Graph HTTP requests,
    $batch members and Dime.Scheduler writes. The naive check-up reads each event: `links` GETs."""
    from shared.usecases.outlook_to_dime.reconcile import run_reconcile

    with FakeGraph(tenant_id=TENANT_ID, seed=1) as graph, FakeDime(api_key="test-api-key") as dime:
        services = make_services(settings_env(azurite, graph.base_url, dime.base_url))
        clean_storage(services)
        seed_linked_events(graph, services, add_mailbox(graph, services), links)
        graph.reset_requests()
        dime.reset_calls()
        asyncio.run(run_reconcile(services))
        return len(graph.requests), len(graph.batch_members), dime.writes


def bench_bulk_retry(azurite, rows: int = 1500) -> tuple[float, int, int]:
    """POST .../transactions/retry {"all": true} over `rows` failed notifications: the 202, then the
    bulk queue until empty. Seconds from the request to the last row, messages, board size."""
    from datetime import UTC, datetime, timedelta

    from shared.adapters.storage.transactions_store import transaction_store
    from shared.core.transactions import Status, Transaction, new_transaction_id
    from shared.names import BULK_QUEUE

    with FakeGraph(tenant_id=TENANT_ID, seed=2) as graph, FakeDime(api_key="test-api-key") as dime:
        services = make_services(settings_env(azurite, graph.base_url, dime.base_url))
        clean_storage(services)
        function_app.services = lambda: services
        person = graph.add_user(mail="bulk@contoso.com")
        track(services, person)
        when = datetime.now(UTC) - timedelta(days=1)
        first = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        failed = []
        for i in range(rows):
            start = first + timedelta(minutes=15 * i)  # a working fortnight of 15-minute jobs, none overlapping
            event = graph.create_event(
                person["id"],
                subject=f"Job {i}",
                start=start.strftime("%Y-%m-%dT%H:%M:%S"),
                end=(start + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S"),
            )
            message = {"mailboxId": person["id"], "eventId": event["id"], "changeType": "created", "changeKey": "x"}
            failed.append(
                Transaction(
                    id=new_transaction_id(when + timedelta(milliseconds=i)),
                    mailbox_id=person["id"],
                    direction="outlook-to-dime",
                    operation="upsert",
                    status=Status.FAILED,
                    created_at=when.isoformat(),
                    error_code="DIME_UNAVAILABLE",
                    payload={"queue": NOTIFICATIONS_QUEUE, "message": message},
                )
            )
        transaction_store(services).add_many(failed)
        started = time.perf_counter()
        request = func.HttpRequest(
            "POST", "/api/manage/transactions/retry", headers=MANAGE_HEADERS, body=b'{"all": true}'
        )
        response = call_function(function_app.manage_transactions_retry, request)
        assert response.status_code == 202, response.get_body()
        run = run_queue(services, BULK_QUEUE, function_app.bulk_transactions, max_rounds=1000)
        elapsed = time.perf_counter() - started
        assert run.failed == 0 and len(dime.appointments) == rows, (run.errors[:3], len(dime.appointments))
        assert list(transaction_store(services).failed()) == []
        return elapsed, run.succeeded, len(dime.appointments)


def main() -> None:
    print("Measuring… (real Azurite, loopback fakes; 2-core machine figures)", flush=True)
    seconds, mib = import_cost()
    azurite = start_azurite()
    backfill_events = int(os.environ.get("BENCH_BACKFILL_EVENTS") or 1000)
    try:
        with FakeGraph(tenant_id=TENANT_ID) as graph, FakeDime(api_key="test-api-key") as dime:
            services = make_services(settings_env(azurite, graph.base_url, dime.base_url))
            clean_storage(services)
            function_app.services = lambda: services
            floor = bench_scale.measure_floor(services, graph, dime)
            webhook = bench_webhook(services, posts=500)
            floor_fakes = bench_scale.fake_costs(graph, dime)
        ours = {
            n: bench_end_to_end(azurite, n, max(2, 200 // n), lambda s: function_app.apply_change) for n in (1, 10, 100)
        }
        naive = bench_end_to_end(azurite, 10, 20, naive_apply)
        reconcile = bench_reconcile(azurite)
        bulk = bench_bulk_retry(azurite)
        backfill = bench_scale.bench_backfill(azurite, 10, backfill_events)
        scale = [bench_scale.bench_scale_out(azurite, n, 10, 30, post_workload) for n in (1, 2, 4)]
    finally:
        azurite.stop()
    from scripts.bench_forged import measure as forged_posts

    forged = forged_posts()

    best = floor.batched  # the fewest calls per change: one message per POST, batched
    rows = floor.rows()
    rows += [
        ("webhook answer, 1 notification/POST (p50 / p99)", f"{webhook[1][0]:.1f} / {webhook[1][1]:.1f} ms"),
        ("webhook answer, 20 notifications/POST (p50 / p99)", f"{webhook[20][0]:.1f} / {webhook[20][1]:.1f} ms"),
        ("webhook answer, 20/POST p99 / one queue put", f"{webhook[20][1] / (floor.ops['queue put'] * 1000):.1f}x"),
        (
            "queue put alone, timed before each 20/POST (p50 / p99); POST p99 / put p99",
            f"{webhook['put-20'][0]:.1f} / {webhook['put-20'][1]:.1f} ms; {webhook[20][1] / webhook['put-20'][1]:.2f}x",
        ),
    ]
    for n, figures in ours.items():
        rows.append(
            (
                f"end to end, {n} mailbox(es): distinct changes/s (messages/s), share of the floor",
                f"{figures['changes_per_second']:.1f} ({figures['messages_per_second']:.1f}), "
                f"{figures['changes_per_second'] / best:.0%}",
            )
        )
    mid = ours[10]
    rows.append(
        (
            "end to end, naive recipe, 10 mailboxes: distinct changes/s, share of the floor",
            f"{naive['changes_per_second']:.1f}, {naive['changes_per_second'] / best:.0%}",
        )
    )
    for label, key in (
        ("Graph requests", "graph_per_change"),
        ("Dime.Scheduler requests", "dime_requests_per_change"),
        ("Dime.Scheduler writes", "writes_per_change"),
        ("Azurite table round trips", "table_per_change"),
        ("Azurite queue round trips", "queue_per_change"),
    ):
        rows.append((f"{label} per distinct change: ours / naive", f"{mid[key]:.2f} / {naive[key]:.2f}"))
    rows += [
        (
            "reconcile, 1,000 unchanged links: Graph requests ($batch members), writes: ours / naive",
            f"{reconcile[0]} ({reconcile[1]}), {reconcile[2]} / 1000 GETs, 0",
        ),
        (
            f"backfill {backfill['events']:,} events (10 mailboxes): seconds, events/s",
            f"{backfill['seconds']:.1f} s, {backfill['events_per_second']:.0f}/s",
        ),
        (
            "backfill: Graph requests ($batch members), Dime.Scheduler requests, table operations",
            f"{backfill['graph_requests']} ({backfill['graph_batch_members']}), {backfill['dime_requests']}, "
            f"{backfill['table_operations']}",
        ),
        ("backfill: CPU seconds inside the fakes", f"{backfill['fakes_cpu_seconds']:.1f} s"),
        (
            "backfill: CPU seconds of Azurite, of this process (the app and the fakes)",
            f"{backfill['azurite_cpu_seconds']:.1f} s, {backfill['process_cpu_seconds']:.1f} s",
        ),
        ("import function_app: median time, peak RSS", f"{seconds * 1000:.0f} ms, {mib:.0f} MiB"),
        (
            "retry 1,500 failed transactions ('all' -> 202 -> bulk queue): seconds, messages",
            f"{bulk[0]:.1f} s, {bulk[1]}",
        ),
    ]
    for label, _bytes, count, median, worst, status in forged:
        figure = f"webhook, forged {label} ({count} items, HTTP {status}): median / max"
        rows.append((figure, f"{median:.1f} / {worst:.1f} ms"))
    rows += floor_fakes
    width = max(len(label) for label, _ in rows)
    print(f"\n{'figure'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 24}")
    for label, value in rows:
        print(f"{label.ljust(width)} | {value}")
    print(f"\n(workload: events created and half of them edited, each change notified x{DUPLICATES}, 20 per POST)")
    print("\nscale-out: 300 distinct changes (900 notifications, 10 mailboxes) drained by worker processes")
    print(
        "processes | changes/s | vs 1 process | share of floor | board exact | workers CPU | Azurite CPU | fakes CPU"
        " | poisoned"
    )
    one = scale[0]["changes_per_second"]
    for run in scale:
        print(
            f"{run['processes']:>9} | {run['changes_per_second']:>9.1f} | {run['changes_per_second'] / one:>11.2f}x | "
            f"{run['changes_per_second'] / best:>14.0%} | {'yes' if run['exact'] else 'NO':>11} | "
            f"{run['workers_cpu_share']:>11.0%} | {run['azurite_cpu_share']:>11.0%} | {run['fakes_cpu_share']:>9.0%} | "
            f"{run['poisoned']:>8}"
        )
    print(
        f"(CPU shares: CPU seconds per second of the run, of {os.cpu_count()} cores in all; "
        f"load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
