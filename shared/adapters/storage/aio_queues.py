"""Sending JSON messages to the app's queues on the event loop (`azure.storage.queue.aio`).

The same messages as `queues.QueueSender` (base64 of the compact JSON: host.json sets
`messageEncoding: base64`), without a thread per send: a 20-item POST from Graph sends its 20
messages concurrently on the loop. Queues are created on first use (every queue of the app at
once) and again if storage says one vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from shared.adapters.storage.provisioning import AsyncProvisioner, Provisioned, is_missing_container
from shared.adapters.storage.queues import encoded
from shared.names import ALL_QUEUES


class AsyncQueueSender:
    def __init__(self, service: Any, provisioned: Provisioned | None = None) -> None:
        self._service = service
        self._clients: dict[str, Any] = {}
        # The first use of any queue creates every queue of the app (concurrently, idempotently).
        self._provisioner = AsyncProvisioner(ALL_QUEUES, self._create, provisioned)

    async def _create(self, queue: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self._service.create_queue(queue)

    async def ensure(self, name: str) -> None:
        await self._provisioner.ensure(name)

    def client(self, name: str) -> Any:
        from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy

        if name not in self._clients:
            self._clients[name] = self._service.get_queue_client(
                name,
                message_encode_policy=BinaryBase64EncodePolicy(),
                message_decode_policy=BinaryBase64DecodePolicy(),
            )
        return self._clients[name]

    async def send(self, queue_name: str, message: dict[str, Any], *, delay_seconds: int | None = None) -> None:
        await self.send_raw(queue_name, encoded(message), delay_seconds=delay_seconds)

    async def send_raw(self, queue_name: str, body: bytes, *, delay_seconds: int | None = None) -> None:
        """Send bytes as they are; if the queue vanished (storage emptied under us), provision again once."""
        from azure.core.exceptions import ResourceNotFoundError

        await self.ensure(queue_name)
        try:
            await self.client(queue_name).send_message(body, visibility_timeout=delay_seconds)
            return
        except ResourceNotFoundError as error:
            if not is_missing_container(error):
                raise
        await self._provisioner.again(queue_name)
        await self.client(queue_name).send_message(body, visibility_timeout=delay_seconds)

    async def send_many(self, queue_name: str, messages: list[dict[str, Any]]) -> None:
        """Send concurrently (the queue service has no batch send); raises if any send failed,
        after every send has finished (a redelivery sends them again: the consumers are idempotent)."""
        results = await asyncio.gather(*(self.send(queue_name, m) for m in messages), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._service.close()
