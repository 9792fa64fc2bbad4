"""A worker PROCESS: function_app's queue functions fed from a shared Azurite, as one more instance.

Flex Consumption scales the app out to several instances on the same queues and storage account;
nothing of one instance's memory (the per-event lock, caches) is shared with another. The
scale-out bench and the multi-process convergence test start several of these beside each other.

    python -m tests.worker_process <mode>   (environment: WORKER_SETTINGS = the app settings as JSON)

Modes:
* ``drain``: print ``ready`` once the app is imported and its clients built, wait for a line on
  stdin, deliver messages of every queue until all are empty, then print one JSON line (handled,
  failed, poisoned, when the last message finished, storage requests made, CPU seconds used).
* ``serve``: print ``ready``, then keep delivering (like the host's listener) until stdin closes;
  then print the same JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from tests.storage_counter import StorageCounter


def main(mode: str) -> None:
    import function_app
    from tests.runner import LocalRunner, build_services

    counter = StorageCounter.install()
    services = build_services(json.loads(os.environ["WORKER_SETTINGS"]))
    function_app.services = lambda: services
    runner = LocalRunner(services)
    for queue in runner.queues:  # clients built (and the queues known) before the clock starts
        services.queues.client(queue)
    services.store.table("links")
    print("ready", flush=True)
    last_done = time.time()
    if mode == "drain":
        sys.stdin.readline()
        cpu_before = time.process_time()
        summary = runner.drain()
        last_done = time.time()
    else:
        cpu_before = time.process_time()
        stopped = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), stopped.set()), daemon=True).start()
        while not stopped.is_set():
            summary = runner.drain()
            if summary.handled:
                last_done = time.time()
            else:
                stopped.wait(0.05)
        summary = runner.drained
    runs = runner.drained.runs.values()
    result = {
        "handled": sum(r.succeeded for r in runs),
        "failed": sum(r.failed for r in runs),
        "poisoned": sum(r.poisoned for r in runs),
        "errors": [e for r in runs for e in r.errors][:5],
        "last_done": last_done,
        "storage_requests": counter.total,
        "cpu_seconds": time.process_time() - cpu_before,  # this process's CPU (all threads) while it worked
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "drain")
