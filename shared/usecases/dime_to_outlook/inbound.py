"""Receiving Dime.Scheduler's publications: parse, split, enqueue, answer in milliseconds.

Dime.Scheduler counts a delivery as done on HTTP 200 and nothing else, and retries every other
answer, 4xx included: three attempts with backoff, then its retry job, and a circuit breaker that
stops all deliveries to a partner that keeps failing (docs.dimescheduler.com, "administration/
transactions", webhook errors DSWBHK020 and DSWBHK030). So the answer says what a retry can do:

* 200 when every readable appointment is on the `dime-publications` queue;
* 200 as well for what no retry can fix (not JSON, no GUID or Id, unreadable times or resources):
  it is recorded **once**, as one failed transaction per distinct body (sha256 of change and body,
  remembered beside the transaction), with a short excerpt; a retried identical body finds it and
  writes nothing. A 4xx would only be delivered again and again, and trip the breaker;
* 503 only when a retry can help (the queue or the transactions table unreachable);
* 401 for missing or wrong Basic credentials (O(1), touches no state);
* 400 at once, touching no state, for a body nested deeper than any real payload (MAX_NESTING):
  no Dime.Scheduler posts one, so it is a forgery, and json.loads would recurse into it;
* 404 for an unknown change in the URL, 413 above the size limits (configuration or forgery).

No Graph or Dime.Scheduler call happens here (a payload with only the internal `Id` is looked up
by the queue worker), and nothing heavy is imported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable

from shared.core.dime_to_outlook.publication import (
    CHANGES,
    MAX_NESTING,
    Publication,
    PublicationError,
    clamped,
    guid_of,
    items_of,
    nested_deeper_than,
    parse_publication,
    zone_named,
)
from shared.core.dime_to_outlook.publications_key import key_is_valid, refusal_reason
from shared.core.transactions import DIME_PARTITION, ErrorCode, Status, Transaction, new_transaction_id
from shared.names import PUBLICATIONS_QUEUE
from shared.services import Services
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
# Dime.Scheduler posts one appointment per POST (dime-to-outlook.md, the connector's real payload);
# each queued appointment costs about six requests in all (scripts/bench_forged.py), so 50 bounds
# what one POST of a key holder can cost to about 300.
MAX_ITEMS = 50
EXCERPT_CHARACTERS = 2_000  # of a refused body, kept for the administrator


class RefusalLog:
    """Publications refused for their key, logged as one line per interval with counts by reason.

    The routes are anonymous to the host, so anyone can reach them: a flood of keyless POSTs must
    not become a flood of log lines (ingestion is billed). The first refusal is logged at once;
    the ones after it are counted and logged with the first refusal after the interval."""

    def __init__(
        self,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        what: str = "publication(s) without DIME_PUBLICATIONS_KEY",
        logger: logging.Logger = log,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.what = what
        self.clock = clock
        self._counts: Counter[str] = Counter()
        self._last = -math.inf
        self._lock = threading.Lock()

    def record(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1
            now = self.clock()
            if now - self._last < self.interval:
                return
            counts, self._counts, self._last = self._counts, Counter(), now
        self.logger.warning(
            "refused %d %s since the last such line: %s",
            sum(counts.values()),
            self.what,
            ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items())),
        )


REFUSALS = RefusalLog()


def authorised(header: str | None, credentials: tuple[str, str] | None) -> bool:
    """Basic credentials, compared in constant time (no credentials configured: the key suffices).

    Both sides are hashed first: compare_digest returns at once when the lengths differ, which
    would tell a caller the length of the secret."""
    if credentials is None:
        return True
    expected = f"{credentials[0]}:{credentials[1]}".encode()
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


async def receive_publications(
    body: bytes,
    change: str | None,
    authorization: str | None,
    get_services: Callable[[], Services],
    *,
    presented_key: str | None,
) -> HttpAnswer:
    services = get_services()
    if not key_is_valid(presented_key, services.settings.dime_publications_keys):
        REFUSALS.record(refusal_reason(presented_key))
        return HttpAnswer(401, "key required")
    if change is not None and change.lower() not in CHANGES:
        return HttpAnswer(404, f"unknown change {change[:20]!r}: use created, updated or deleted")
    change = change.lower() if change else None
    if not authorised(authorization, services.settings.dime_webhook_credentials):
        log.warning("refused a publication: missing or wrong Basic credentials (%d bytes)", len(body))
        return HttpAnswer(401, "credentials required")
    if len(body) > MAX_BODY_BYTES:  # a retry cannot make it smaller: 200, recorded once
        reason = f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} (one appointment per POST is usual)"
        return await _record_once(services, ErrorCode.PUBLICATION_MALFORMED, reason, body, change, None)
    if nested_deeper_than(body, MAX_NESTING):
        log.warning("refused a publication nested deeper than %d levels (%d bytes)", MAX_NESTING, len(body))
        return HttpAnswer(400, f"the body is nested deeper than {MAX_NESTING} levels: not a Dime.Scheduler publication")
    try:
        document = json.loads(body)
        items = items_of(document)
    except (ValueError, PublicationError, RecursionError) as error:
        reason = f"the body is not an appointment or an array of them: {str(error)[:200]}"
        return await _record_once(services, ErrorCode.PUBLICATION_MALFORMED, reason, body, change, None)
    if len(items) > MAX_ITEMS:  # a retry cannot split it: 200, recorded once, nothing queued
        reason = f"{len(items)} appointments in one request; at most {MAX_ITEMS}"
        return await _record_once(services, ErrorCode.PUBLICATION_INVALID, reason, body, change, None)
    zone = zone_named(services.settings.dime_time_zone)
    received = services.clock()
    good: list[Publication] = []
    bad: list[tuple[int, PublicationError]] = []
    for number, item in enumerate(items):
        try:
            pub = parse_publication(item, zone, by_id=True)
            if change != "deleted" and not pub.has_times:
                raise PublicationError("a created or updated appointment needs StartDate and EndDate")
            good.append(clamped(pub, received))
        except PublicationError as error:
            bad.append((number, error))
    now = received.isoformat()
    messages = [{"change": change, "publication": p.to_message(), "receivedAt": now} for p in good]
    try:
        await services.aqueues.send_many(PUBLICATIONS_QUEUE, messages)
    except Exception:
        log.exception("could not enqueue publications; answering 503 so Dime.Scheduler delivers again")
        return HttpAnswer(503, "could not accept the publications now")
    log.info("queued %d publication(s) (%s), refused %d", len(messages), change or "upsert", len(bad))
    if bad:
        reasons = "; ".join(f"item {n}: {error}" for n, error in bad[:20])
        guid = guid_of(items[bad[0][0]]) if len(items) == 1 else None
        answer = await _record_once(services, bad[0][1].code, reasons, body, change, guid)
        if answer.status == 200 and good:
            return HttpAnswer(200, f"queued {len(good)}; {answer.body}")
        return answer
    return HttpAnswer(200, f"queued {len(good)}")


def body_fingerprint(body: bytes, change: str | None) -> str:
    """What makes a refused body "the same one again": the change its URL names, and its bytes."""
    return hashlib.sha256(f"{change or 'upsert'}\n".encode() + body).hexdigest()


async def _record_once(
    services: Services, code: ErrorCode, reason: str, body: bytes, change: str | None, guid: str | None
) -> HttpAnswer:
    """`_record_refused` on a worker thread (refused bodies are rare: the fingerprint look-up is
    not on the hot path)."""
    return await asyncio.to_thread(_record_refused, services, code, reason, body, change, guid)


def _record_refused(
    services: Services, code: ErrorCode, reason: str, body: bytes, change: str | None, guid: str | None
) -> HttpAnswer:
    """Record what no retry can fix as one failed transaction per distinct body, then answer 200.

    The body's fingerprint points at its transaction (the transactions table's fingerprint rows,
    as for poisoned messages): the same body delivered again costs one read and writes nothing.
    Storage unreachable: 503, so Dime.Scheduler delivers again and the failure is not lost."""
    from shared.adapters.storage.transactions_store import transaction_store

    fingerprint = body_fingerprint(body, change)
    pointer = f"publication-{fingerprint}"
    now = services.clock()
    try:
        store = transaction_store(services)
        existing = store.by_fingerprint(pointer)
        if existing is not None:
            log.info("refused body %s… delivered again: already failed transaction %s", fingerprint[:12], existing.id)
            return HttpAnswer(200, f"refused, already recorded as failed transaction {existing.id}: {reason[:500]}")
        transaction = Transaction(
            id=new_transaction_id(now),
            mailbox_id=DIME_PARTITION,
            direction="dime-to-outlook",
            operation=change or "upsert",
            status=Status.FAILED,
            created_at=now.isoformat(),
            appointment_guid=guid,
            error_code=code.value,
            message=reason[:1000],
            payload={
                "received": body[:EXCERPT_CHARACTERS].decode("utf-8", "replace"),
                "bytes": len(body),
                "sha256": fingerprint,
            },
        )
        store.add(transaction)
        store.remember_fingerprint(pointer, transaction)
    except Exception:
        log.exception("could not record a refused publication; answering 503")
        return HttpAnswer(503, "could not record the refused publication now")
    log.warning("refused a publication (%s, body %s…): %s", code.value, fingerprint[:12], reason[:300])
    return HttpAnswer(200, f"refused, recorded as failed transaction {transaction.id}: {reason[:500]}")
