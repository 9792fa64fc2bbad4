"""Reads shared across callers (pipeline/coalesce.py), against a stand-in `$batch` sender: no
Graph, no timing asserted (the sender is released by the test, not by a clock)."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.usecases.outlook_to_dime.pipeline.coalesce import Coalescer


class Sender:
    """Records each `$batch` it is asked to send; answers when the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        self.release = asyncio.Event()

    async def __call__(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        self.batches.append(list(keys))
        await self.release.wait()
        return {key: ("answer", key) for key in keys}


def test_reads_of_several_callers_ride_one_batch_and_a_key_is_read_once() -> None:
    async def scenario() -> tuple[list[Any], Sender]:
        sender = Sender()
        sender.release.set()
        reads = Coalescer(sender)
        answers = await asyncio.gather(
            reads.ask([("m", "a"), ("m", "b")]), reads.ask([("m", "b"), ("n", "c")]), reads.ask([("n", "d")])
        )
        return answers, sender

    answers, sender = asyncio.run(scenario())
    assert len(sender.batches) == 1 and sorted(sender.batches[0]) == [("m", "a"), ("m", "b"), ("n", "c"), ("n", "d")]
    assert answers[1] == {("m", "b"): ("answer", ("m", "b")), ("n", "c"): ("answer", ("n", "c"))}


def test_a_busy_mailbox_waits_and_its_reads_ride_the_next_batch_together() -> None:
    """While our $batch holds all 4 of a mailbox's slots, its new reads are not sent; when it
    returns they leave as one request (formerly: one request each, queued at the mailbox)."""

    async def scenario() -> tuple[Sender, Coalescer]:
        sender = Sender()
        reads = Coalescer(sender)
        first = asyncio.ensure_future(reads.ask([("m", f"e{n}") for n in range(4)]))  # holds m's 4 slots
        while not sender.batches:
            await asyncio.sleep(0)
        later = [asyncio.ensure_future(reads.ask([("m", f"late{n}")])) for n in range(3)]
        other = asyncio.ensure_future(reads.ask([("n", "x")]))  # another mailbox is not held up
        while len(sender.batches) < 2:
            await asyncio.sleep(0)
        assert sender.batches[1] == [("n", "x")]
        sender.release.set()
        await asyncio.gather(first, *later, other)
        return sender, reads

    sender, reads = asyncio.run(scenario())
    assert [sorted(batch) for batch in sender.batches[2:]] == [[("m", "late0"), ("m", "late1"), ("m", "late2")]]
    assert reads.peak["m"] == 4 and reads.requests == 3


def test_a_failed_envelope_fails_every_read_it_carried() -> None:
    async def scenario() -> list[Any]:
        async def broken(keys: list[tuple[str, str]]) -> dict:
            raise RuntimeError("graph down")

        reads = Coalescer(broken)
        return await asyncio.gather(reads.ask([("m", "a")]), reads.ask([("m", "b")]), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert [type(o).__name__ for o in outcomes] == ["RuntimeError", "RuntimeError"]


def test_reads_asked_first_leave_ahead_of_those_already_waiting() -> None:
    """A busy mailbox's pending reads leave 20 per `$batch` in the order asked, except reads asked
    `first` (a change's last read, its proof), which ride the next `$batch` ahead of them."""

    async def scenario() -> Sender:
        sender = Sender()
        reads = Coalescer(sender)
        busy = asyncio.ensure_future(reads.ask([("m", f"e{n}") for n in range(4)]))  # holds m's 4 slots
        while not sender.batches:
            await asyncio.sleep(0)
        waiting = asyncio.ensure_future(reads.ask([("m", f"w{n}") for n in range(25)]))
        await asyncio.sleep(0)
        proof = asyncio.ensure_future(reads.ask([("m", "proof")], first=True))
        await asyncio.sleep(0)
        sender.release.set()
        await asyncio.gather(busy, waiting, proof)
        return sender

    sender = asyncio.run(scenario())
    assert sender.batches[1][0] == ("m", "proof") and len(sender.batches[1]) == 20
    assert sender.batches[2] == [("m", f"w{n}") for n in range(19, 25)]
