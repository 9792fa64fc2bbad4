"""One run record for a run handed out in chunks (core/runs.py `opened_run`, `with_chunk`): the timer
opens it, each chunk adds its figures, and it reads as the sum of the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.storage.syncstate_store import run_values
from shared.core.runs import DIME_RECONCILE, DIME_SCHEDULER_SCOPE, RunStats, opened_run, with_chunk

T0 = datetime(2026, 12, 6, 3, 15, tzinfo=UTC)
RUN = "dime-reconcile-20261206t031500z-0123abcd"


def row(run: RunStats) -> dict[str, Any]:
    return run_values(run)


def chunk(writes: int, outcome: str = "completed", breaker: str = "", error: str = "") -> RunStats:
    part = RunStats(DIME_RECONCILE, DIME_SCHEDULER_SCOPE, T0 + timedelta(seconds=5), reason="timer")
    part.changes, part.writes, part.graph_requests, part.dime_requests, part.breaker = writes, writes, 2, 1, breaker
    if error:
        part.error(error)
    return part.finish(outcome, T0 + timedelta(seconds=6))


def opened(chunks: int = 2) -> dict[str, Any]:
    record = opened_run(DIME_RECONCILE, DIME_SCHEDULER_SCOPE, T0, RUN, chunks, 30)
    record.dime_requests = 1  # the timer's GET /resource
    return row(record.finish(record.outcome, T0))


def test_the_chunks_add_up_and_the_run_completes_with_its_last_chunk() -> None:
    first = with_chunk(opened(), chunk(3), RUN, T0 + timedelta(seconds=7))
    assert (
        first is not None and first.outcome == "running" and first.round == f"{RUN}: 1 of 2 chunks done (30 mailboxes)"
    )
    second = with_chunk(row(first), chunk(4, breaker="m1: too many deletes"), RUN, T0 + timedelta(seconds=9))
    assert second is not None and second.outcome == "completed"
    assert (second.changes, second.writes, second.graph_requests, second.dime_requests) == (7, 7, 4, 3)
    assert second.started_at == T0 and second.duration_ms == 9000 and second.breaker == "m1: too many deletes"


def test_a_failed_chunk_is_the_run_s_outcome_and_is_not_counted_done() -> None:
    failed = with_chunk(opened(), chunk(0, "failed", error="Dime.Scheduler failed (503)"), RUN, T0)
    assert failed is not None and failed.outcome == "failed" and ": 0 of 2 chunks done" in failed.round
    assert failed.errors == 1 and failed.last_error == "Dime.Scheduler failed (503)"
    later = with_chunk(row(failed), chunk(1), RUN, T0)
    assert later is not None and later.outcome == "failed" and later.error_messages == ["Dime.Scheduler failed (503)"]


def test_a_breaker_outranks_completed_but_not_failed() -> None:
    tripped = with_chunk(opened(1), chunk(0, "breaker-tripped", breaker="m: 8 deletes"), RUN, T0)
    assert tripped is not None and tripped.outcome == "breaker-tripped"


def test_a_chunk_of_another_run_or_without_an_opened_record_adds_nothing() -> None:
    assert with_chunk(opened(), chunk(1), "dime-reconcile-20261207t031500z-89abcdef", T0) is None
    assert with_chunk(None, chunk(1), RUN, T0) is None
    legacy = row(chunk(5))  # a record of a pass over everyone (no chunks): not this run's
    assert with_chunk(legacy, chunk(1), RUN, T0) is None
