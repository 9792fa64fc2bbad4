"""How many requests the adapters sent on behalf of one run: figures for its run record.

A run that wants its figures opens `metered()`; the Graph and Dime.Scheduler adapters count every
request they send into the meter of the context they run in. A context variable (not a counter on
the adapter) because one process serves other invocations at the same time: the queue workers'
requests must not land in the timer's record. Child tasks and `asyncio.to_thread` copy the context,
so they count into the same meter; a request sent outside any metered run counts nowhere.
Each figure is a request the adapter sent (a `$batch` is one); the SDKs' own retries of it are not
seen here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestMeter:
    graph: int = 0
    dime: int = 0


_current: ContextVar[RequestMeter | None] = ContextVar("request_meter", default=None)


@contextlib.contextmanager
def metered() -> Iterator[RequestMeter]:
    meter = RequestMeter()
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


def count_graph() -> None:
    meter = _current.get()
    if meter is not None:
        meter.graph += 1


def count_dime() -> None:
    meter = _current.get()
    if meter is not None:
        meter.dime += 1
