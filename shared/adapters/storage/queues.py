"""Sending JSON messages to the app's queues.

host.json sets `messageEncoding: base64`, so every message we send is base64 text: whatever the
trigger expects, the sender must produce (the SDK sends plain text unless told otherwise).
"""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from shared.adapters.storage.provisioning import Provisioner, is_missing_container
from shared.names import ALL_QUEUES

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueServiceClient


_SENDERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="queue-send")


def encoded(message: dict[str, Any]) -> bytes:
    """A message's body: compact JSON, UTF-8 (the client's policy base64-encodes it). Shared with
    the asynchronous sender (aio_queues.py): both send the same bytes."""
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


class QueueSender:
    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}
        self.provisioner = Provisioner(ALL_QUEUES, self._create_queue)

    def client(self, queue_name: str) -> QueueClient:
        """The queue's client; the first use in this process creates every queue of the app."""
        from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy

        self.provisioner.ensure(queue_name)
        if queue_name not in self._clients:
            self._clients[queue_name] = self._service.get_queue_client(
                queue_name,
                message_encode_policy=BinaryBase64EncodePolicy(),
                message_decode_policy=BinaryBase64DecodePolicy(),
            )
        return self._clients[queue_name]

    def send(self, queue_name: str, message: dict[str, Any], *, delay_seconds: int | None = None) -> None:
        self.send_raw(queue_name, encoded(message), delay_seconds=delay_seconds)

    def send_raw(self, queue_name: str, body: bytes, *, delay_seconds: int | None = None) -> None:
        """Send bytes as they are; if the queue vanished (storage emptied under us), provision again once."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client(queue_name).send_message(body, visibility_timeout=delay_seconds)
        except ResourceNotFoundError as error:
            if not is_missing_container(error):
                raise
            self.provisioner.again(queue_name)
            self.client(queue_name).send_message(body, visibility_timeout=delay_seconds)

    def send_many(self, queue_name: str, messages: list[dict[str, Any]]) -> None:
        """Send concurrently (the queue service has no batch send): a 20-item POST from Graph
        costs about one round trip instead of twenty. Raises if any send failed."""
        if len(messages) <= 1:
            for message in messages:
                self.send(queue_name, message)
            return
        futures = [_SENDERS.submit(self.send, queue_name, message) for message in messages]
        for future in futures:
            future.result()

    def _create_queue(self, name: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._service.create_queue(name)

    def create_queues(self, names: tuple[str, ...] = ALL_QUEUES) -> None:
        """Create the queues now (scripts/create_storage.py); the app also does it on first use."""
        for name in names:
            self.provisioner.ensure(name)

    def depth(self, queue_name: str) -> int:
        return self.client(queue_name).get_queue_properties().approximate_message_count
