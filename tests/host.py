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


def call_function(function: Callable[..., Any], *args: Any) -> Any:
    """Call a (sync or async) function the way the Python worker does."""
    result = function(*args)
    if inspect.isawaitable(result):
        return asyncio.run(result)  # type: ignore[arg-type]
    return result


def run_queue(services: Services, queue_name: str, function: Callable[..., Any], *, max_rounds: int = 20) -> QueueRun:
    """Deliver every message (again and again on failure) until the queue is empty."""
    client = services.queues.client(queue_name)
    run = QueueRun()
    for _ in range(max_rounds):
        batch = list(client.receive_messages(messages_per_page=32, visibility_timeout=60))
        if not batch:
            break
        for message in batch:
            trigger_input = QueueMessage(
                id=message.id,
                body=message.content,
                dequeue_count=message.dequeue_count,
                pop_receipt=message.pop_receipt,
            )
            try:
                call_function(function, trigger_input)
            except Exception as error:
                run.failed += 1
                run.errors.append(f"{type(error).__name__}: {error}")
                if message.dequeue_count >= MAX_DEQUEUE_COUNT:
                    services.queues.client(queue_name + POISON_SUFFIX).send_message(message.content)
                    client.delete_message(message)
                    run.poisoned += 1
                else:
                    client.update_message(message, visibility_timeout=0)
                continue
            client.delete_message(message)
            run.succeeded += 1
    return run
