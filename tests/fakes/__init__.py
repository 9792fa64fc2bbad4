"""Stateful loopback fakes of the external services (Microsoft Graph, Dime.Scheduler).

Real HTTP servers on 127.0.0.1 (one per test is cheap), used by the adapter and end-to-end tests
and, later, as offline simulators for a demo. Only stdlib + httpx; ``StaticTokenCredential``
(which needs azure-core) is imported lazily so the fakes alone stay dependency-free.
"""

from typing import TYPE_CHECKING, Any

from .dime import FakeDime
from .graph import FakeGraph

if TYPE_CHECKING:
    from .credential import StaticTokenCredential

__all__ = ["FakeDime", "FakeGraph", "StaticTokenCredential"]


def __getattr__(name: str) -> Any:
    if name == "StaticTokenCredential":
        from .credential import StaticTokenCredential

        return StaticTokenCredential
    raise AttributeError(name)
