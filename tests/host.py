"""A small stand-in for the Functions host's queue listener, over real Azurite queues.

It honours host.json the way the host does: base64 messages, the dequeue count, and moving a
message that failed `maxDequeueCount` times to `<queue>-poison`. Tests use it to run the real
queue functions exactly as deployed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.functions.queue import QueueMessage

from shared.names import POISON_SUFFIX
from shared.services import Services

HOST_JSON = json.loads((Path(__file__).resolve().parent.parent / "host.json").read_text())
MAX_DEQUEUE_COUNT = HOST_JSON["extensions"]["queues"]["maxDequeueCount"]

log = logging.getLogger(__name__)


@dataclass
class QueueRun:
    succeeded: int = 0
    failed: int = 0
    poisoned: int = 0
    errors: list[str] = field(default_factory=list)


# HOST_BATCH_SIZE overrides host.json's batchSize: the bench measures the throughput of several
# settings with it (scripts/bench_scale.py, `concurrency`) before host.json is set.
BATCH_SIZE = int(os.environ.get("HOST_BATCH_SIZE") or HOST_JSON["extensions"]["queues"]["batchSize"])


def call_function(function: Callable[..., Any], *args: Any) -> Any:
    """Call a (sync or async) function the way the Python worker does."""
    result = function(*args)
    if inspect.isawaitable(result):
        return asyncio.run(result)  # type: ignore[arg-type]
    return result


async def _invoke(function: Callable[..., Any], message: QueueMessage) -> None:
    """Sync functions run on a worker thread (as the host does); async ones on the loop."""
    result = await asyncio.to_thread(function, message)
    if inspect.isawaitable(result):
        await result


def run_queue(services: Services, queue_name: str, function: Callable[..., Any], *, max_rounds: int = 20) -> QueueRun:
    """Deliver every message (again on failure) until the queue is empty.

    Like the host: one event loop for the worker's lifetime, and up to `batchSize` messages
    handled concurrently, so duplicates of one notification really do arrive at the same time.
    """
    return asyncio.run(_run_queue(services, queue_name, function, max_rounds))


async def _run_queue(services: Services, queue_name: str, function: Callable[..., Any], max_rounds: int) -> QueueRun:
    client = services.queues.client(queue_name)
    run = QueueRun()
    for _ in range(max_rounds):
        batch = list(
            client.receive_messages(messages_per_page=BATCH_SIZE, max_messages=BATCH_SIZE, visibility_timeout=60)
        )
        if not batch:
            break
        inputs = [
            QueueMessage(id=m.id, body=m.content, dequeue_count=m.dequeue_count, pop_receipt=m.pop_receipt)
            for m in batch
        ]
        outcomes = await asyncio.gather(*(_invoke(function, i) for i in inputs), return_exceptions=True)
        for message, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                run.failed += 1
                run.errors.append(f"{type(outcome).__name__}: {outcome}")
                if message.dequeue_count >= MAX_DEQUEUE_COUNT:
                    services.queues.send_raw(queue_name + POISON_SUFFIX, message.content)
                    client.delete_message(message)
                    run.poisoned += 1
                else:
                    client.update_message(message, visibility_timeout=0)
                continue
            client.delete_message(message)
            run.succeeded += 1
    return run


def fire_timer(timer: Callable[..., Any], services: Services) -> QueueRun:
    """Call a timer function, then deliver what it handed out on the chunk queue (the delta,
    reconcile and renewal timers fan out: usecases/fanout.py), as the host's listener would."""
    from azure.functions.timer import TimerRequest

    import function_app
    from shared.names import MAILBOX_CHUNKS_QUEUE

    call_function(timer, TimerRequest(past_due=False))
    return run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)
