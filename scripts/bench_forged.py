"""What a forged notification POST costs the webhook: answer time for 1 MiB of forged items.

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


def main() -> None:
    print("forged POST                           | bytes     | items | median ms | max ms | status")
    for label, size, count, median, worst, status in measure():
        print(f"{label:<37} | {size:>9} | {count:>5} | {median:>9.1f} | {worst:>6.1f} | {status}")


if __name__ == "__main__":
    main()
