"""Receiving Dime.Scheduler's publications: parse, split, enqueue, answer in milliseconds.

Dime.Scheduler counts a delivery as done on HTTP 200 and nothing else, and retries the rest. So:
200 only when every readable appointment is on the `dime-publications` queue; 503 when it could
not be queued (Dime.Scheduler retries); 4xx only for what no retry can fix, each such item
recorded as a failed transaction with a stable code. Wrong credentials cost O(1) and touch no
state. No Graph or Dime.Scheduler call happens here, and nothing heavy is imported.
"""

from __future__ import annotations

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
from typing import Any

from shared.core.dime_to_outlook.publication import (
    CHANGES,
    Publication,
    PublicationError,
    items_of,
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
KEPT_BODY_CHARACTERS = 20_000  # of a rejected body, for the administrator


class RefusalLog:
    """Publications refused for their key, logged as one line per interval with counts by reason.

    The routes are anonymous to the host, so anyone can reach them: a flood of keyless POSTs must
    not become a flood of log lines (ingestion is billed). The first refusal is logged at once;
    the ones after it are counted and logged with the first refusal after the interval."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
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
        log.warning(
            "refused %d publication(s) without DIME_PUBLICATIONS_KEY since the last such line: %s",
            sum(counts.values()),
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


def receive_publications(
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
    if len(body) > MAX_BODY_BYTES:
        return HttpAnswer(413, "body too large")
    if not authorised(authorization, services.settings.dime_webhook_credentials):
        log.warning("refused a publication: missing or wrong Basic credentials (%d bytes)", len(body))
        return HttpAnswer(401, "credentials required")
    try:
        document = json.loads(body)
        items = items_of(document)
    except (ValueError, PublicationError) as error:
        reason = f"the body is not an appointment or an array of them: {str(error)[:200]}"
        return _reject(services, ErrorCode.PUBLICATION_MALFORMED, reason, [], body, change)
    if len(items) > MAX_ITEMS:
        return HttpAnswer(413, f"at most {MAX_ITEMS} appointments per request")
    zone = zone_named(services.settings.dime_time_zone)
    good: list[Publication] = []
    bad: list[tuple[int, str, Any]] = []
    for number, item in enumerate(items):
        try:
            pub = parse_publication(item, zone)
            if change != "deleted" and not pub.has_times:
                raise PublicationError("a created or updated appointment needs StartDate and EndDate")
            good.append(pub)
        except PublicationError as error:
            bad.append((number, str(error), item))
    now = services.clock().isoformat()
    messages = [{"change": change, "publication": p.to_message(), "receivedAt": now} for p in good]
    try:
        services.queues.send_many(PUBLICATIONS_QUEUE, messages)
    except Exception:
        log.exception("could not enqueue publications; answering 503 so Dime.Scheduler delivers again")
        return HttpAnswer(503, "could not accept the publications now")
    log.info("queued %d publication(s) (%s), rejected %d", len(messages), change or "upsert", len(bad))
    if bad:
        reasons = "; ".join(f"item {n}: {why}" for n, why, _ in bad[:20])
        answer = _reject(services, ErrorCode.PUBLICATION_INVALID, reasons, bad, body, change)
        if good and answer.status == 400:
            return HttpAnswer(200, f"queued {len(good)}; rejected {len(bad)}: {reasons}")
        return answer
    return HttpAnswer(200, f"queued {len(good)}")


def _reject(
    services: Services,
    code: ErrorCode,
    reason: str,
    bad: list[tuple[int, str, Any]],
    body: bytes,
    change: str | None,
) -> HttpAnswer:
    """Record what no retry can fix as failed transactions (visible, archivable); then 400."""
    now = services.clock()
    rows = []
    for number, why, item in bad or [(0, reason, None)]:
        kept = (
            json.dumps(item)[:KEPT_BODY_CHARACTERS]
            if item is not None
            else body[:KEPT_BODY_CHARACTERS].decode("utf-8", "replace")
        )
        guid = item.get("AppointmentGuid") or item.get("appointmentGuid") if isinstance(item, dict) else None
        rows.append(
            Transaction(
                id=new_transaction_id(now),
                mailbox_id=DIME_PARTITION,
                direction="dime-to-outlook",
                operation=change or "upsert",
                status=Status.FAILED,
                created_at=now.isoformat(),
                appointment_guid=str(guid)[:100] if guid else None,
                error_code=code.value,
                message=f"item {number}: {why}"[:1000] if bad else why[:1000],
                payload={"received": kept},
            )
        )
    try:
        for row in rows:
            services.store.add_transaction(row)
    except Exception:
        log.exception("could not record rejected publications; answering 503")
        return HttpAnswer(503, "could not record the rejected publications now")
    log.warning("rejected %d publication item(s) (%s): %s", len(rows), code.value, reason[:300])
    return HttpAnswer(400, reason)
