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
QUEUES_JSON = HOST_JSON["extensions"]["queues"]
BATCH_SIZE = int(os.environ.get("HOST_BATCH_SIZE") or QUEUES_JSON["batchSize"])
NEW_BATCH_THRESHOLD = int(
    os.environ.get("HOST_NEW_BATCH_THRESHOLD") or QUEUES_JSON.get("newBatchThreshold", BATCH_SIZE // 2)
)
# While messages are in flight and the queue showed none, the listener receives again when one of
# them settles (a failed one becomes visible again then), or after this long at the latest (a
# message sent meanwhile by someone else). The host backs off up to maxPollingInterval instead.
POLL_SECONDS = 0.25


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


def run_queue(services: Services, queue_name: str, function: Callable[..., Any], *, max_rounds: int = 200) -> QueueRun:
    """Deliver every message (again on failure) until the queue is empty and nothing is in flight.

    Like the host's queue listener (WebJobs `QueuesOptions`, learn.microsoft.com/azure/azure-functions/
    functions-bindings-storage-queue#host-json): one event loop for the worker's lifetime; it
    receives `batchSize` messages and receives again whenever the messages in flight drop to
    `newBatchThreshold` or fewer (at most batchSize + newBatchThreshold at once), so duplicates of
    one notification really do arrive at the same time, and a slow message never holds up the
    next receive. Each message is deleted as soon as its function returns (or made visible again
    when it raised; moved to `<queue>-poison` after `maxDequeueCount` deliveries). `max_rounds`
    bounds the receives that returned messages (a guard against a message that never settles).
    """
    return asyncio.run(_run_queue(services, queue_name, function, max_rounds))


async def _run_queue(services: Services, queue_name: str, function: Callable[..., Any], max_rounds: int) -> QueueRun:
    sender = services.aqueues
    await sender.ensure(queue_name)
    client = sender.client(queue_name)
    run = QueueRun()
    in_flight: set[asyncio.Task[None]] = set()

    async def handle(message: Any) -> None:
        incoming = QueueMessage(
            id=message.id, body=message.content, dequeue_count=message.dequeue_count, pop_receipt=message.pop_receipt
        )
        try:
            await _invoke(function, incoming)
        except Exception as error:  # the host records the failure and delivers the message again
            run.failed += 1
            run.errors.append(f"{type(error).__name__}: {error}")
            if message.dequeue_count >= MAX_DEQUEUE_COUNT:
                await sender.send_raw(queue_name + POISON_SUFFIX, message.content)
                await client.delete_message(message)
                run.poisoned += 1
            else:
                await client.update_message(message, visibility_timeout=0)
            return
        await client.delete_message(message)
        run.succeeded += 1

    rounds = 0
    try:
        while rounds < max_rounds:
            batch = []
            if len(in_flight) <= NEW_BATCH_THRESHOLD:
                batch = [
                    m
                    async for m in client.receive_messages(
                        messages_per_page=BATCH_SIZE, max_messages=BATCH_SIZE, visibility_timeout=60
                    )
                ]
            if batch:
                rounds += 1
                for message in batch:
                    task = asyncio.create_task(handle(message))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                continue
            if not in_flight:
                break
            # Wait for a message to settle (then receive again), or poll while failed ones wait.
            await asyncio.wait(in_flight, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
    return run


def fire_timer(timer: Callable[..., Any], services: Services) -> QueueRun:
    """Call a timer function, then deliver what it handed out on the chunk queue (the delta,
    reconcile and renewal timers fan out: usecases/fanout.py), as the host's listener would."""
    from azure.functions.timer import TimerRequest

    import function_app
    from shared.names import MAILBOX_CHUNKS_QUEUE

    call_function(timer, TimerRequest(past_due=False))
    return run_queue(services, MAILBOX_CHUNKS_QUEUE, function_app.run_mailbox_chunk)
