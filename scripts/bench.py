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

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402
import httpx  # noqa: E402

import function_app  # noqa: E402
from scripts import bench_scale  # noqa: E402
from scripts.latency_proxy import GRAPH_BATCH, PROFILES, routed  # noqa: E402
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


def workload(
    graph: FakeGraph, services, mailboxes: int, changes_per_mailbox: int, *, interleave: bool = False
) -> list[list[dict]]:
    """Creates and then edits events of onboarded people; returns the POSTs Graph would send: the
    notifications (x3 each, the three of one change one after another) 20 at a time. In the
    bench's order a mailbox's changes all come before the next mailbox's, and POSTs are cut every
    20 notifications; `interleave`: each POST holds one mailbox's notifications (as Graph delivers
    a subscription's), and the mailboxes take turns, as a tenant's mailboxes change at the same time."""
    per_mailbox: list[list[dict]] = []
    for m in range(mailboxes):
        person = graph.add_user(mail=f"tech{m}@contoso.com")
        track(services, person)
        items = []
        for c in range(changes_per_mailbox):
            event = graph.create_event(
                person["id"], subject=f"Job {c}", start="2026-11-24T08:00:00", end="2026-11-24T09:00:00"
            )
            if c % 2:
                event = graph.update_event(person["id"], event["id"], subject=f"Job {c} (moved)")
            items += [notification_item(person["id"], event["id"], "updated", event["changeKey"])] * DUPLICATES
        per_mailbox.append(items)
    if not interleave:
        flat = [item for items in per_mailbox for item in items]
        return [flat[start : start + 20] for start in range(0, len(flat), 20)]
    chunked = [[items[start : start + 20] for start in range(0, len(items), 20)] for items in per_mailbox]
    return [posts[turn] for turn in range(max(map(len, chunked))) for posts in chunked if turn < len(posts)]


# Notifications the naive recipe handles at once per process, below httpx's pool of 100 connections:
# requests queued inside httpcore's pool cost CPU that grows with the queue (it scans every waiting
# request at each state change), which would measure httpx's plumbing instead of the design. At the
# realistic profile's 100-150 ms per request, 64 at once allow ~250 notifications/s, far above
# what the naive recipe reaches, so this bounds nothing that is measured.
NAIVE_IN_FLIGHT = 64
# Attempts of one Graph GET of the naive recipe, which waits out each 429's Retry-After (as the Graph
# SDK's retry handler does); then the message fails and the queue delivers it again.
NAIVE_ATTEMPTS = 10


def naive_apply(services):
    """The low-code recipe, fully asynchronous: every notification = one Graph GET of the event and
    one Dime.Scheduler `/import` of it, the notifications of a packed message concurrently (plus one
    GET of the user per mailbox, for the resource's email), on one `httpx.AsyncClient` per event
    loop. The ratio ours / naive then measures the design, not the plumbing."""
    settings = services.settings
    graph_url, dime_url = settings.graph_base_url.rstrip("/"), settings.dime_base_url.rstrip("/")
    graph_headers = {"Authorization": "Bearer naive", "Prefer": 'IdType="ImmutableId", outlook.timezone="UTC"'}
    clients: dict[int, tuple[httpx.AsyncClient, asyncio.Semaphore]] = {}
    mails: dict[str, asyncio.Task[str]] = {}

    def client() -> httpx.AsyncClient:
        loop = id(asyncio.get_running_loop())
        if loop not in clients:  # httpx's default pool: 100 connections
            clients[loop] = (httpx.AsyncClient(timeout=60.0), asyncio.Semaphore(NAIVE_IN_FLIGHT))
        return clients[loop][0]

    async def mail_of(mailbox: str) -> str:
        return (await get_honouring_retry_after(f"{graph_url}/users/{mailbox}")).json()["mail"]

    async def get_honouring_retry_after(url: str) -> httpx.Response:
        """A GET retried after Retry-After on 429/503/504, as the Graph SDK's retry handler does
        (a mailbox's requests beyond its 4 at once are refused: MailboxConcurrency)."""
        for _ in range(NAIVE_ATTEMPTS - 1):
            answer = await client().get(url, headers=graph_headers)
            if answer.status_code not in (429, 503, 504):
                break
            await asyncio.sleep(float(answer.headers.get("Retry-After") or 1))
        else:
            answer = await client().get(url, headers=graph_headers)
        answer.raise_for_status()
        return answer

    async def one(change: dict) -> None:
        client()  # the loop's client and semaphore exist
        async with clients[id(asyncio.get_running_loop())][1]:
            await one_in_flight(change)

    async def one_in_flight(change: dict) -> None:
        mailbox, event_id = change["mailboxId"], change["eventId"]
        if mailbox not in mails:  # one GET of the user per mailbox, shared by its concurrent changes
            mails[mailbox] = asyncio.ensure_future(mail_of(mailbox))
        mail = await mails[mailbox]
        answer = await get_honouring_retry_after(f"{graph_url}/users/{mailbox}/events/{event_id}")
        event = event_from_graph(answer.json())
        guid = appointment_guid(TENANT_ID, mailbox, event_id)
        appointment = appointment_for(event, guid, mail, private_details=False, zone=settings.dime_zone)
        written = await client().post(
            f"{dime_url}/import", json=[upsert_call(appointment)], headers={"X-API-KEY": settings.dime_api_key}
        )
        written.raise_for_status()

    async def handle(msg: func.QueueMessage) -> None:
        message = json.loads(msg.get_body())
        await asyncio.gather(*(one(change) for change in message.get("changes", [message])))

    return handle


def post_workload(graph: FakeGraph, services, mailboxes: int, changes_per_mailbox: int) -> list[str]:
    """The workload, mailboxes interleaved, posted to the webhook 20 notifications at a time;
    returns the mailbox ids."""
    posts = workload(graph, services, mailboxes, changes_per_mailbox, interleave=True)
    for items in posts:
        post(items)
    return sorted({item["resource"].split("/")[1] for items in posts for item in items})


def bench_end_to_end(
    azurite, mailboxes: int, changes_per_mailbox: int, handler_for, *, profile: str, interleave: bool = False
) -> dict[str, float]:
    """The workload posted to the webhook 20 notifications at a time, then the notifications queue
    drained in this process (the host's batch size), every request behind the proxies of
    `profile`. CPU per distinct change: this process's CPU time (the app; the fakes' own CPU, which
    they count, taken out; the proxies and Azurite are other processes) over the distinct changes."""
    counter = StorageCounter.install()
    with (
        FakeGraph(tenant_id=TENANT_ID) as graph,
        FakeDime(api_key="test-api-key") as dime,
        routed(profile, azurite, graph=graph, dime=dime) as storage,
    ):
        services = make_services(settings_env(storage, graph.base_url, dime.base_url))
        clean_storage(services)
        function_app.services = lambda: services
        posts = workload(graph, services, mailboxes, changes_per_mailbox, interleave=interleave)
        graph.reset_requests()
        dime.reset_calls()
        counter.reset()
        fakes_cpu_before = graph.stats.snapshot()[2] + dime.stats.snapshot()[2]
        proxy_pid = getattr(storage, "proxy_pid", None)
        proxy_before = bench_scale.process_cpu_seconds(proxy_pid) if proxy_pid else 0.0
        cpu_before = time.process_time()
        started = time.perf_counter()
        for items in posts:
            post(items)
        run = run_queue(services, NOTIFICATIONS_QUEUE, handler_for(services), max_rounds=1000)
        elapsed = time.perf_counter() - started
        cpu = (
            time.process_time() - cpu_before - (graph.stats.snapshot()[2] + dime.stats.snapshot()[2] - fakes_cpu_before)
        )
        proxy_cpu = bench_scale.process_cpu_seconds(proxy_pid) - proxy_before if proxy_pid else 0.0
        distinct = mailboxes * changes_per_mailbox
        assert run.poisoned == 0 and len(dime.appointments) == distinct, (run.errors[:3], len(dime.appointments))
        storage_calls = counter.by_service()
        return {
            "seconds": elapsed,
            "changes_per_second": distinct / elapsed,
            "graph_per_change": len(graph.requests) / distinct,
            "writes_per_change": dime.writes / distinct,
            "dime_requests_per_change": len(dime.requests) / distinct,
            "table_per_change": storage_calls.get("table", 0) / distinct,
            "queue_per_change": storage_calls.get("queue", 0) / distinct,
            "messages_per_second": sum(map(len, posts)) / elapsed,
            "cpu_ms_per_change": cpu / distinct * 1000,
            "proxy_cpu_share": proxy_cpu / elapsed,  # of one core: the proxies must not be what limits
            "graph_refusals": graph.concurrency_refusals,  # 429 MailboxConcurrency (requests and members)
            "redeliveries": run.failed,
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


def bench_bulk_retry(azurite, rows: int = 1500, *, profile: str = "loopback") -> tuple[float, int, int]:
    """POST .../transactions/retry {"all": true} over `rows` failed notifications: the 202, then the
    bulk queue until empty, behind the proxies of `profile`. Seconds from the request to the last
    row, messages, board size."""
    from datetime import UTC, datetime, timedelta

    from shared.adapters.storage.transactions_store import transaction_store
    from shared.core.transactions import Status, Transaction, new_transaction_id
    from shared.names import BULK_QUEUE

    with (
        FakeGraph(tenant_id=TENANT_ID, seed=2) as graph,
        FakeDime(api_key="test-api-key") as dime,
        routed(profile, azurite, graph=graph, dime=dime) as storage,
    ):
        services = make_services(settings_env(storage, graph.base_url, dime.base_url))
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


QUICK = bool(os.environ.get("BENCH_QUICK"))  # a short run (smaller workloads, no 1/100-mailbox rows, no sweep)
BATCH_MEMBERS = 20  # Graph JSON batching: at most 20 requests in one $batch


@dataclass(frozen=True)
class Sizes:
    mailboxes: int = 10
    changes: int = 60
    backfill_events: int = 1000
    bulk_rows: int = 1500
    scale_mailboxes: int = 40
    scale_changes: int = 15


def sizes() -> Sizes:
    if QUICK:
        return Sizes(changes=12, backfill_events=100, bulk_rows=150, scale_changes=3)
    return Sizes(backfill_events=int(os.environ.get("BENCH_BACKFILL_EVENTS") or 1000))


def graph_bound(profile: str, mailboxes: int) -> float:
    """The best distinct changes/s any design could reach through Graph: every change needs at least
    one read, a `$batch` holds 20, and a mailbox allows 4 concurrent requests, which one `$batch` of
    4 or more of its members fills (Graph runs up to 4 members of a mailbox at once: FakeGraph
    counts min(4, members) against it), so each mailbox reads at most 20 events per `$batch` time.
    Infinite when the profile does not delay."""
    seconds = PROFILES[profile].delay(GRAPH_BATCH)
    return math.inf if seconds == 0 else mailboxes * BATCH_MEMBERS / seconds


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"\n{'figure'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 24}")
    for label, value in rows:
        print(f"{label.ljust(width)} | {value}")


def bench_profile(azurite, profile: str, size: Sizes, *, once: bool) -> dict:
    """Every figure under one latency profile; `once`: also the figures no profile changes (import
    cost, reconcile request counts, the fakes' cost per request)."""
    result: dict = {"profile": profile}
    with (
        FakeGraph(tenant_id=TENANT_ID) as graph,
        FakeDime(api_key="test-api-key") as dime,
        routed(profile, azurite, graph=graph, dime=dime) as storage,
    ):
        services = make_services(settings_env(storage, graph.base_url, dime.base_url))
        clean_storage(services)
        function_app.services = lambda: services
        repeat = 100 if profile == "loopback" else 20
        result["floor"] = bench_scale.measure_floor(services, graph, dime, repeat=repeat)
        result["webhook"] = bench_webhook(services, posts=500 if profile == "loopback" else 100)
        if once:
            result["fakes"] = bench_scale.fake_costs(graph, dime)
    print(f"  [{profile}] floor and webhook done", flush=True)
    m, c = size.mailboxes, size.changes
    ours = lambda s: function_app.apply_change  # noqa: E731
    result["ours"] = bench_end_to_end(azurite, m, c, ours, profile=profile)
    result["interleaved"] = bench_end_to_end(azurite, m, c, ours, profile=profile, interleave=True)
    result["naive"] = bench_end_to_end(azurite, m, c, naive_apply, profile=profile)
    result["naive_interleaved"] = bench_end_to_end(azurite, m, c, naive_apply, profile=profile, interleave=True)
    if profile == "loopback" and not QUICK:
        result["others"] = {n: bench_end_to_end(azurite, n, 200 // n, ours, profile=profile) for n in (1, 100)}
    print(f"  [{profile}] end to end done", flush=True)
    result["bulk"] = bench_bulk_retry(azurite, size.bulk_rows, profile=profile)
    print(f"  [{profile}] bulk retry done", flush=True)
    result["backfill"] = bench_scale.bench_backfill(azurite, 10, size.backfill_events, profile=profile)
    print(f"  [{profile}] backfill done", flush=True)
    result["scale"] = [
        bench_scale.bench_scale_out(azurite, n, size.scale_mailboxes, size.scale_changes, post_workload, profile)
        for n in (1, 2, 4)
    ]
    print(f"  [{profile}] scale-out done", flush=True)
    if once:
        result["reconcile"] = bench_reconcile(azurite)
    return result


def print_profile(result: dict, size: Sizes) -> None:
    profile = result["profile"]
    floor, webhook = result["floor"], result["webhook"]
    best = floor.batched
    print(f"\n=== profile: {profile} ===")
    rows = floor.rows()
    rows += [
        ("webhook answer, 1 notification/POST (p50 / p99)", f"{webhook[1][0]:.1f} / {webhook[1][1]:.1f} ms"),
        ("webhook answer, 20 notifications/POST (p50 / p99)", f"{webhook[20][0]:.1f} / {webhook[20][1]:.1f} ms"),
        (
            "queue put alone, timed before each 20/POST (p50 / p99); POST p99 / put p99",
            f"{webhook['put-20'][0]:.1f} / {webhook['put-20'][1]:.1f} ms; {webhook[20][1] / webhook['put-20'][1]:.2f}x",
        ),
    ]
    m, c = size.mailboxes, size.changes
    for key, label in (
        ("ours", f"end to end, {m} mailboxes x {c} changes, bench order"),
        ("interleaved", f"end to end, {m} mailboxes x {c} changes, mailboxes interleaved"),
        ("naive", "end to end, naive recipe (async), bench order"),
        ("naive_interleaved", "end to end, naive recipe (async), interleaved"),
    ):
        figures = result[key]
        rows.append(
            (
                f"{label}: distinct changes/s (notifications/s), share of the floor",
                f"{figures['changes_per_second']:.1f} ({figures['messages_per_second']:.1f}), "
                f"{figures['changes_per_second'] / best:.0%}",
            )
        )
    for n, figures in result.get("others", {}).items():
        rows.append(
            (
                f"end to end, {n} mailbox(es) x {200 // n}, bench order: distinct changes/s",
                f"{figures['changes_per_second']:.1f}",
            )
        )
    ours, interleaved, naive, naive_i = (
        result["ours"],
        result["interleaved"],
        result["naive"],
        result["naive_interleaved"],
    )
    rows += [
        (
            "ours / naive, same order (bench order; interleaved)",
            f"{ours['changes_per_second'] / naive['changes_per_second']:.2f}x; "
            f"{interleaved['changes_per_second'] / naive_i['changes_per_second']:.2f}x",
        ),
        (
            f"bound: Graph (one $batch of {BATCH_MEMBERS} reads at a time per mailbox, {m} mailboxes)",
            "no limit (no delay)" if math.isinf(bound := graph_bound(profile, m)) else f"{bound:.0f} changes/s",
        ),
        (
            f"bound: CPU ({os.cpu_count()} cores / this run's CPU per change, bench order; interleaved)",
            f"{os.cpu_count() / ours['cpu_ms_per_change'] * 1000:.0f}; "
            f"{os.cpu_count() / interleaved['cpu_ms_per_change'] * 1000:.0f} changes/s",
        ),
        (
            "CPU of the latency proxies (cores): ours bench order / interleaved / naive",
            f"{ours['proxy_cpu_share']:.2f} / {interleaved['proxy_cpu_share']:.2f} / {naive['proxy_cpu_share']:.2f}",
        ),
        (
            "CPU per distinct change, app process: ours bench order / interleaved / naive",
            f"{ours['cpu_ms_per_change']:.2f} / {interleaved['cpu_ms_per_change']:.2f} / "
            f"{naive['cpu_ms_per_change']:.2f} ms",
        ),
    ]
    for label, key in (
        ("Graph requests", "graph_per_change"),
        ("Dime.Scheduler requests", "dime_requests_per_change"),
        ("Dime.Scheduler writes", "writes_per_change"),
        ("Azurite table round trips", "table_per_change"),
        ("Azurite queue round trips", "queue_per_change"),
    ):
        rows.append((f"{label} per distinct change: ours / naive", f"{ours[key]:.2f} / {naive[key]:.2f}"))
    backfill, bulk = result["backfill"], result["bulk"]
    rows += [
        (
            f"backfill {backfill['events']:,} events (10 mailboxes): seconds, events/s",
            f"{backfill['seconds']:.1f} s, {backfill['events_per_second']:.0f}/s",
        ),
        (
            "backfill: Graph requests ($batch members), Dime.Scheduler requests, table operations",
            f"{backfill['graph_requests']} ({backfill['graph_batch_members']}), {backfill['dime_requests']}, "
            f"{backfill['table_operations']}",
        ),
        (
            "backfill: CPU seconds of Azurite, of this process (the app and the fakes), inside the fakes",
            f"{backfill['azurite_cpu_seconds']:.1f} s, {backfill['process_cpu_seconds']:.1f} s, "
            f"{backfill['fakes_cpu_seconds']:.1f} s",
        ),
        (
            f"retry {size.bulk_rows:,} failed transactions ('all' -> 202 -> bulk queue): seconds, messages",
            f"{bulk[0]:.1f} s, {bulk[1]}",
        ),
    ]
    if "reconcile" in result:
        reconcile = result["reconcile"]
        rows.append(
            (
                "reconcile, 1,000 unchanged links: Graph requests ($batch members), writes: ours / naive",
                f"{reconcile[0]} ({reconcile[1]}), {reconcile[2]} / 1000 GETs, 0",
            )
        )
    rows += result.get("fakes", [])
    table(rows)
    scale = result["scale"]
    print(
        f"\nscale-out [{profile}]: {scale[0]['distinct']} distinct changes ({size.scale_mailboxes} mailboxes"
        f" interleaved, x{DUPLICATES} notifications, 20 per POST) drained by worker processes"
    )
    print(
        "processes | changes/s | vs 1 process | board exact | workers CPU | CPU/change | Azurite CPU | fakes CPU"
        " | poisoned"
    )
    one = scale[0]["changes_per_second"]
    for run in scale:
        print(
            f"{run['processes']:>9} | {run['changes_per_second']:>9.1f} | {run['changes_per_second'] / one:>11.2f}x | "
            f"{'yes' if run['exact'] else 'NO':>11} | {run['workers_cpu_share']:>11.0%} | "
            f"{run['workers_cpu_per_change'] * 1000:>7.2f} ms | {run['azurite_cpu_share']:>11.0%} | "
            f"{run['fakes_cpu_share']:>9.0%} | {run['poisoned']:>8}"
        )
    print(f"(CPU shares: CPU seconds per second of the run, of {os.cpu_count()} cores in all)")


def summary(results: list[dict], size: Sizes, sweep: list[dict]) -> None:
    """The issue's goals table, one column per profile."""
    names = [r["profile"] for r in results]
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, render) -> None:
        rows.append((label, [render(r) for r in results]))

    m, c = size.mailboxes, size.changes
    add(f"{m} mailboxes x {c} changes, bench order (changes/s)", lambda r: f"{r['ours']['changes_per_second']:.1f}")
    add("the same, mailboxes interleaved", lambda r: f"{r['interleaved']['changes_per_second']:.1f}")
    add(
        "naive (async), bench order; interleaved",
        lambda r: f"{r['naive']['changes_per_second']:.1f}; {r['naive_interleaved']['changes_per_second']:.1f}",
    )
    add(
        "ours / naive, bench order; interleaved",
        lambda r: (
            f"{r['ours']['changes_per_second'] / r['naive']['changes_per_second']:.2f}x; "
            f"{r['interleaved']['changes_per_second'] / r['naive_interleaved']['changes_per_second']:.2f}x"
        ),
    )
    add("bound through Graph (changes/s)", lambda r: f"{graph_bound(r['profile'], m):.0f}")
    add(f"backfill 10 x {size.backfill_events:,} events (s)", lambda r: f"{r['backfill']['seconds']:.1f}")
    add(f"bulk retry of {size.bulk_rows:,} failed (s)", lambda r: f"{r['bulk'][0]:.1f}")
    add(
        f"{size.scale_mailboxes} mailboxes, 1 process (changes/s)",
        lambda r: f"{r['scale'][0]['changes_per_second']:.1f}",
    )
    add(
        "2 / 4 processes / 1; board exact",
        lambda r: (
            f"{r['scale'][1]['changes_per_second'] / r['scale'][0]['changes_per_second']:.2f}x / "
            f"{r['scale'][2]['changes_per_second'] / r['scale'][0]['changes_per_second']:.2f}x; "
            + ("yes" if all(s["exact"] for s in r["scale"]) else "NO")
        ),
    )
    add(
        "CPU per distinct change: app (bench order); workers (1 process)",
        lambda r: f"{r['ours']['cpu_ms_per_change']:.2f} ms; {r['scale'][0]['workers_cpu_per_change'] * 1000:.2f} ms",
    )
    add(
        "Graph / Dime.Scheduler requests per change",
        lambda r: f"{r['ours']['graph_per_change']:.2f} / {r['ours']['dime_requests_per_change']:.2f}",
    )
    width = max(len(label) for label, _ in rows)
    widths = [max(len(n), *(len(v[i]) for _, v in rows)) for i, n in enumerate(names)]
    print(f"\n=== summary ({'BENCH_QUICK: small workloads' if QUICK else 'full workloads'}) ===")
    if results:
        print(f"{'figure'.ljust(width)} | " + " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
        print(f"{'-' * width}-|-" + "-|-".join("-" * w for w in widths))
        for label, values in rows:
            print(f"{label.ljust(width)} | " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)))
    if sweep:
        print(
            f"\nhost concurrency (realistic, 1 worker process, {size.scale_mailboxes} mailboxes interleaved): "
            "messages delivered at once -> changes/s, worker CPU share, board exact"
        )
        for run in sweep:
            print(
                f"  batchSize {run['batch_size']:>3}: {run['changes_per_second']:.1f} changes/s, "
                f"{run['workers_cpu_share']:.0%} CPU, {'exact' if run['exact'] else 'NOT EXACT'}"
            )
    load = os.getloadavg()
    print(f"(load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores)")


MAX_BATCH_SIZE = 32  # Queue storage: at most 32 messages per receive; host.json's batchSize: at most 32


def sweep_concurrency(azurite, size: Sizes, batch_sizes: list[int]) -> list[dict]:
    """One worker process under the realistic profile at each host batch size (printed as measured)."""
    sweep = []
    for batch_size in batch_sizes:
        run = bench_scale.bench_scale_out(
            azurite, 1, size.scale_mailboxes, size.scale_changes, post_workload, "realistic", batch_size=batch_size
        )
        sweep.append({**run, "batch_size": batch_size})
        print(f"  [realistic] batchSize {batch_size}: {run['changes_per_second']:.1f} changes/s", flush=True)
    return sweep


def main() -> None:
    parser = argparse.ArgumentParser(description="make bench: every figure under loopback and realistic latencies")
    parser.add_argument("--profile", choices=["loopback", "realistic", "both"], default="both")
    parser.add_argument(
        "--concurrency",
        default="" if QUICK else "8,16,32",
        help="host batch sizes to measure under the realistic profile (comma-separated, each 1 to 32: a "
        "queue receive returns at most 32 messages, and host.json's batchSize allows no more; empty: none)",
    )
    parser.add_argument(
        "--concurrency-only", action="store_true", help="only the host concurrency measurement (realistic)"
    )
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.concurrency.split(",") if b.strip()]
    if any(not 1 <= b <= MAX_BATCH_SIZE for b in batch_sizes):
        parser.error(f"--concurrency: each batch size 1 to {MAX_BATCH_SIZE}")
    if args.concurrency_only:
        azurite = start_azurite()
        try:
            summary([], sizes(), sweep_concurrency(azurite, sizes(), batch_sizes))
        finally:
            azurite.stop()
        return
    profiles = ["loopback", "realistic"] if args.profile == "both" else [args.profile]
    size = sizes()
    load = os.getloadavg()
    print(
        f"Measuring… (real Azurite, loopback fakes, profiles {', '.join(profiles)}; {os.cpu_count()} cores; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
        flush=True,
    )
    started = time.perf_counter()
    seconds, mib = import_cost()
    azurite = start_azurite()
    results, sweep = [], []
    try:
        for i, profile in enumerate(profiles):
            results.append(bench_profile(azurite, profile, size, once=i == 0))
            print_profile(results[-1], size)
        if "realistic" in profiles:
            sweep = sweep_concurrency(azurite, size, batch_sizes)
    finally:
        azurite.stop()
    from scripts.bench_forged import measure as forged_posts

    rows = [("import function_app: median time, peak RSS", f"{seconds * 1000:.0f} ms, {mib:.0f} MiB")]
    for label, _bytes, count, median, worst, status in forged_posts():
        rows.append(
            (f"webhook, forged {label} ({count} items, HTTP {status}): median / max", f"{median:.1f} / {worst:.1f} ms")
        )
    print("\n=== no profile (the app alone) ===")
    table(rows)
    print(f"\n(workload: events created and half of them edited, each change notified x{DUPLICATES}, 20 per POST)")
    summary(results, size, sweep)
    print(f"(make bench took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
