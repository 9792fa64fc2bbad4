"""host.json against what the code assumes of it: not its literals, the relations that break the app
when one side changes without the other."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.adapters.storage.queues import QueueSender
from shared.core.retention import QUEUE_MESSAGE_TTL
from shared.usecases.outlook_to_dime.mailbox_runs import RUN_BUDGET_SECONDS
from shared.usecases.outlook_to_dime.pipeline import BATCH_BUDGET_SECONDS

HOST = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
QUEUES = HOST["extensions"]["queues"]


def timespan(text: str) -> timedelta:
    """A host.json TimeSpan ("hh:mm:ss")."""
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


class _RecordingService:
    """Stands in for QueueServiceClient: records how QueueSender configures its queue clients."""

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    def create_queue(self, name: str) -> None:
        pass  # QueueSender provisions every queue of the app on first use

    def get_queue_client(self, name: str, **options: Any) -> object:
        self.options = options
        return object()


def test_what_the_app_sends_is_what_the_queue_trigger_decodes():
    """The trigger decodes per `messageEncoding`; QueueSender must encode the same way, or every
    message fails to bind (base64 expected, JSON received) and ends in a poison queue."""
    service = _RecordingService()
    QueueSender(service).client("notifications")  # type: ignore[arg-type]
    body = json.dumps({"value": [{"id": "é"}]}).encode("utf-8")
    on_the_wire = service.options["message_encode_policy"].encode(body)
    as_the_trigger_reads_it = (
        base64.b64decode(on_the_wire, validate=True)
        if QUEUES["messageEncoding"] == "base64"
        else on_the_wire.encode("utf-8")
    )
    assert as_the_trigger_reads_it == body


def test_a_message_failing_every_delivery_poisons_before_it_expires():
    """A message that fails every delivery must reach `<queue>-poison` (where it becomes a visible
    failure) before its time-to-live runs out, or it vanishes silently: maxDequeueCount deliveries,
    each followed by visibilityTimeout, must fit in the TTL that retention.py assumes."""
    retried_for = QUEUES["maxDequeueCount"] * timespan(QUEUES["visibilityTimeout"])
    assert QUEUES["maxDequeueCount"] >= 2  # a transient failure gets at least one retry
    assert retried_for < QUEUE_MESSAGE_TTL


def test_budgets_end_before_the_host_stops_the_function():
    """The host kills an invocation at functionTimeout: a timer's run budget and a packed message's
    wait for throttled reads must end before it, with time left to save where they stopped."""
    limit = timespan(HOST["functionTimeout"])
    assert timedelta(seconds=RUN_BUDGET_SECONDS) + timedelta(minutes=1) <= limit
    assert timedelta(seconds=BATCH_BUDGET_SECONDS) + timedelta(minutes=1) <= limit
