"""Self-provisioning: the app creates its tables and queues on first use, once per process.

A new storage account, a fresh Azurite or a restarted in-memory Azurite holds none of them, and
the app must still work without a set-up script. The first use of any table (or queue) creates
every name of `shared.names.ALL_TABLES` (or `ALL_QUEUES`) at once, concurrently and idempotently;
after that, using a table or queue costs nothing extra (never a create on the webhook's hot path
after the first request). `forget()` makes the next use provision again, for when storage says a
table or queue is missing after all (the account was emptied under a running process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor


class Provisioner:
    """Runs `create(name)` for every name once, before the first use of any of them."""

    def __init__(self, names: Iterable[str], create: Callable[[str], None]) -> None:
        self._names = tuple(names)
        self._create = create
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, name: str) -> None:
        if name in self._done:  # the hot path: a set lookup, no I/O
            return
        with self._lock:
            if name in self._done:
                return
            missing = [n for n in dict.fromkeys((*self._names, name)) if n not in self._done]
            with ThreadPoolExecutor(max_workers=min(8, len(missing)), thread_name_prefix="provision") as pool:
                list(pool.map(self._create, missing))  # raises the first failure: nothing marked done
            self._done.update(missing)

    def forget(self) -> None:
        with self._lock:
            self._done.clear()


def is_missing_container(error: BaseException) -> bool:
    """Storage says the table or queue itself does not exist (not: the entity or message)."""
    code = str(getattr(error, "error_code", "") or "")
    return code in ("TableNotFound", "QueueNotFound")
