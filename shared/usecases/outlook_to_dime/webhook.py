"""Receiving Graph notifications: answer within milliseconds, never do slow work here.

Graph drops notifications for good when too many answers are slow, so the request only verifies
and enqueues. Anyone can post to the URL (the function key leaks, a clientState is seen once), so:

- every item is verified by pure, O(1) checks first (tenant, one HMAC: the clientState names and
  proves its mailbox); a forged item never touches a table;
- only items that passed cost a read of their subscription row (one per distinct subscription id
  per POST, cached for a minute, and at most two ids per mailbox per POST: items naming a third
  id are dropped unread): an item is accepted only from a subscription this app holds for that
  mailbox. Nothing is ever onboarded from a notification (that is the admin API's job);
  a subscription Graph holds for the mailbox that our table does not know is a stray (a lost
  create answer, a duplicate): its items are dropped and the subscription is deleted, paced,
  through the lifecycle queue (at most two per mailbox in ten minutes, whatever ids are invented);
- one log line per POST, with counts by reason, never one line per item.

If storage fails while verifying or enqueueing we answer 503, so Graph delivers again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.core.outlook_to_dime.packing import pack
from shared.core.outlook_to_dime.webhook import (
    MAX_BODY_BYTES,
    STRAY_EVENT,
    MalformedBody,
    TooManyItems,
    parse_notifications,
)
from shared.names import LIFECYCLE_QUEUE, NOTIFICATIONS_QUEUE
from shared.services import Services
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

STRAY_DELAY_SECONDS = 60  # paced: a stray is deleted a minute later, after its row had time to appear


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
        parsed = parse_notifications(body, settings.graph_tenant_id, settings.client_state_secrets)
    except TooManyItems as error:
        log.warning("notification POST refused: %s", error)
        return HttpAnswer(413, str(error))
    except MalformedBody as error:
        log.warning("notification POST refused: %s", error)
        return HttpAnswer(400, str(error))
    try:
        strays = parsed.keep_owned(services.subscription_owners.lookup(parsed.subscription_ids()))
        services.queues.send_many(NOTIFICATIONS_QUEUE, pack([change.to_message() for change in parsed.changes]))
        services.queues.send_many(LIFECYCLE_QUEUE, [item.to_message() for item in parsed.lifecycle])
        for subscription_id, mailbox_id in services.subscription_owners.new_strays(strays):
            message = {"mailboxId": mailbox_id, "subscriptionId": subscription_id, "lifecycleEvent": STRAY_EVENT}
            services.queues.send(LIFECYCLE_QUEUE, message, delay_seconds=STRAY_DELAY_SECONDS)
    except Exception:
        log.exception("could not verify or enqueue notifications; answering 503 so Graph delivers again")
        return HttpAnswer(503, "could not accept the notifications now")
    dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(parsed.rejected.items())) or "none"
    log.info(
        "notification POST: queued %d change and %d lifecycle items; dropped: %s",
        len(parsed.changes),
        len(parsed.lifecycle),
        dropped,
    )
    return HttpAnswer(202)
