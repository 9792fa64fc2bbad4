"""The rule set in force, read from the `rules` table and kept for a short while per process.

A publication costs no table read for the rules (one read per RULES_TTL_SECONDS per process); a
save takes effect on this instance at once and on every other within the TTL, without a restart.
The reconcile that a save starts reads them afresh (`fresh=True`), so it applies what was saved.
A rule set that cannot be read (edited by hand in the table) is an error, never "no rules": the
publication is retried rather than placed against rules that said otherwise.
"""

from __future__ import annotations

import asyncio
import time

from shared.adapters.storage.rules_rows import read_rules_row
from shared.core.dime_to_outlook.rules import RuleError, RuleSet, read_rules
from shared.core.transactions import ErrorCode, SyncError
from shared.services import Services

RULES_TTL_SECONDS = 30.0


async def rules_in_force(services: Services, *, fresh: bool = False) -> RuleSet:
    cached = services.caches.rules
    now = time.monotonic()
    if not fresh and cached is not None and now - cached[1] < RULES_TTL_SECONDS:
        return cached[0]
    try:
        stored = await asyncio.to_thread(read_rules_row, services.store)
        rules = read_rules(stored.document)
    except (RuleError, ValueError) as error:
        raise SyncError(ErrorCode.RULES_UNREADABLE, f"the stored rule set cannot be read: {error}") from None
    services.caches.rules = (rules, now)
    return rules


def forget_rules(services: Services) -> None:
    services.caches.rules = None
