"""Receiving Graph notifications: answer within milliseconds, never do slow work here.

Graph drops notifications for good when too many answers are slow, so the request only verifies
and enqueues. If enqueueing fails we answer 503, so Graph delivers again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.core.webhook import MAX_BODY_BYTES, MalformedBody, parse_notifications
from shared.names import LIFECYCLE_QUEUE, NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.notification_batch import pack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers (the console's security headers)


def receive_notifications(
    body: bytes, validation_token: str | None, get_services: Callable[[], Services]
) -> HttpAnswer:
    """The notification (and lifecycle) endpoint: handshake, or verify and enqueue.

    Services are resolved only after the handshake, which must answer even before the app is
    fully configured (Graph validates the URL when the first subscription is created).
    """
    if validation_token is not None:
        # Graph's handshake: echo the decoded token as plain text, nothing else.
        return HttpAnswer(200, validation_token)
    if len(body) > MAX_BODY_BYTES:
        return HttpAnswer(413, "body too large")
    services = get_services()
    settings = services.settings
    try:
        parsed = parse_notifications(
            body, settings.graph_tenant_id, settings.client_state_secrets, lambda sid: _mailbox_of(services, sid)
        )
    except MalformedBody as error:
        return HttpAnswer(400, str(error))
    for reason in parsed.rejected:
        log.warning("dropped a notification item: %s", reason)
    try:
        services.queues.send_many(NOTIFICATIONS_QUEUE, pack([change.to_message() for change in parsed.changes]))
        services.queues.send_many(LIFECYCLE_QUEUE, [item.to_message() for item in parsed.lifecycle])
    except Exception:
        log.exception("could not enqueue notifications; answering 503 so Graph delivers again")
        return HttpAnswer(503, "could not accept the notifications now")
    log.info("queued %d change and %d lifecycle notifications", len(parsed.changes), len(parsed.lifecycle))
    return HttpAnswer(202)


def _mailbox_of(services: Services, subscription_id: str) -> str | None:
    """Lifecycle items may come without `resource`: find the mailbox by subscription id (a table read)."""
    from shared.adapters.subscription_rows import mailbox_of_subscription

    try:
        return mailbox_of_subscription(services.store, subscription_id)
    except Exception:
        log.exception("could not look subscription %s up", subscription_id)
        return None
