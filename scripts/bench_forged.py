"""What a forged notification POST costs the webhook: answer time for 1 MiB of forged items.

Second table: a caller who also holds one mailbox's real clientState (it rides on every
notification) posts 1,000 items with random subscription ids, three times: the table reads each
POST costs and the stray deletions it schedules (each one a Graph DELETE in the lifecycle worker).

Forged = the attacker has the function key but not CLIENT_STATE_SECRET: well-formed items with a
wrong clientState, as change items and as lifecycle items (which carry no `resource`). Runs
against a real Azurite; prints median and worst answer times. Self-contained (only function_app
and tests/conftest), so the same script measures an older checkout too:

    .venv/bin/python scripts/bench_forged.py
"""

from __future__ import annotations

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
    print("forged POST                           | bytes     | items | median ms | max ms | status")
    for label, size, count, median, worst, status in measure():
        print(f"{label:<37} | {size:>9} | {count:>5} | {median:>9.1f} | {worst:>6.1f} | {status}")
    print()
    print(
        "valid clientState, 1,000 random subscription ids | POST | table requests | stray deletes queued | ms | status"
    )
    for post, (status, table, strays, ms) in enumerate(unknown_subscriptions(), start=1):
        print(f"{'':<48} | {post:>4} | {table:>14} | {strays:>20} | {ms:>4.0f} | {status}")


if __name__ == "__main__":
    main()
