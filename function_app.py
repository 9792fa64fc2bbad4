"""Azure Functions triggers, and nothing else: each parses its input and calls one use case.

Heavy imports (msgraph, azure SDKs) happen inside the use cases on first use, so this module
imports in milliseconds and Flex Consumption starts fast.
"""

import json

import azure.functions as func

from shared import names
from shared.core.dime_to_outlook.publications_key import presented_key
from shared.core.runs import DELTA, RECONCILE, RENEWAL
from shared.names import ADMIN_ROUTE_PREFIX, LIFECYCLE_QUEUE, NOTIFICATIONS_QUEUE, STORAGE_CONNECTION
from shared.services import services
from shared.usecases.admin.access import refused as management_refusal
from shared.usecases.admin.appointments import appointment_detail, event_detail
from shared.usecases.admin.bulk_transactions import run_bulk
from shared.usecases.admin.console import console_asset, console_settings
from shared.usecases.admin.me import my_settings, preview, session
from shared.usecases.admin.resources import list_resources, resource_request
from shared.usecases.admin.rules import get_rules, preview_rules, put_rules
from shared.usecases.admin.transactions import (
    archive_transactions,
    count_transactions,
    get_transaction,
    list_links,
    list_transactions,
    retry_transactions,
)
from shared.usecases.admin.transactions import health as health_check
from shared.usecases.admin.transactions import status as sync_status
from shared.usecases.dime_to_outlook.hooks import manage_hooks, reregister_hooks
from shared.usecases.dime_to_outlook.inbound import receive_publications
from shared.usecases.dime_to_outlook.place_appointment import apply_publication
from shared.usecases.dime_to_outlook.reconcile import run_dime_reconcile
from shared.usecases.dime_to_outlook.unmatched import unmatched
from shared.usecases.fanout import fan_out, run_chunk
from shared.usecases.outlook_to_dime.lifecycle import handle_lifecycle
from shared.usecases.outlook_to_dime.notification_batch import apply_notifications
from shared.usecases.outlook_to_dime.webhook import receive_notifications
from shared.usecases.poison import keeping_last_error, record_poisoned
from shared.usecases.resync import request_resync, resync
from shared.usecases.retry import retry_due

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _refused(req: func.HttpRequest) -> func.HttpResponse | None:
    """The management guard (shared/usecases/admin/access.py), first thing in every management route:
    the management key or a signed-in Connector.Admin, else 401/403 in O(1). The routes are anonymous
    to the host: its `admin` level would accept the master key, and only the master key."""
    answer = management_refusal(req.headers, req.params, services(), req.method)
    return None if answer is None else _http(answer)


def _http(answer) -> func.HttpResponse:
    return func.HttpResponse(
        answer.body,
        status_code=answer.status,
        headers=dict(answer.headers),
        mimetype=answer.content_type.split(";")[0],
        charset="utf-8",
    )


@app.route(route="notifications", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def notifications(req: func.HttpRequest) -> func.HttpResponse:
    """Graph change notifications (and the validation handshake)."""
    return _http(receive_notifications(req.get_body(), req.params.get("validationToken"), services))


@app.route(route="lifecycle", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    """Graph lifecycle notifications: same verification, routed to the lifecycle queue."""
    return _http(receive_notifications(req.get_body(), req.params.get("validationToken"), services))


@app.queue_trigger(arg_name="msg", queue_name=NOTIFICATIONS_QUEUE, connection=STORAGE_CONNECTION)
async def apply_change(msg: func.QueueMessage) -> None:
    """The verified notifications of one POST (or one): bring those events to Dime.Scheduler."""
    async with keeping_last_error(NOTIFICATIONS_QUEUE, msg.get_body(), msg.dequeue_count, services()):
        await apply_notifications(json.loads(msg.get_body()), services())


# Subscriptions and onboarding -------------------------------------------------------
# Route parameters are read from req.route_params, never declared as arguments (the host would
# index zero functions). "admin/..." is reserved by the host, hence ADMIN_ROUTE_PREFIX "manage".


@app.route(route=ADMIN_ROUTE_PREFIX + "/resources", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_resources_list(req: func.HttpRequest) -> func.HttpResponse:
    """Every tracked mailbox, with its consent and subscription."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await list_resources(dict(req.params), services()))


@app.route(
    route=ADMIN_ROUTE_PREFIX + "/resources/{mailbox}",
    methods=["GET", "PUT", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
async def manage_resource(req: func.HttpRequest) -> func.HttpResponse:
    """Onboard (PUT), inspect (GET), change (PATCH) or remove (DELETE) one mailbox."""
    if (refusal := _refused(req)) is not None:
        return refusal
    mailbox = req.route_params.get("mailbox")
    return _http(await resource_request(req.method, mailbox, req.get_body(), dict(req.params), services()))


@app.timer_trigger(schedule="%RENEW_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def renew_subscriptions(timer: func.TimerRequest) -> None:
    """Hand out the mailboxes whose subscription needs a write (renew near expiry, create missing,
    delete of disabled, move to a new key) on the chunk queue; then re-register the Dime.Scheduler
    hooks made with another publications key or URL (a rotation)."""
    await fan_out(services(), RENEWAL)
    await reregister_hooks(services())


@app.queue_trigger(arg_name="msg", queue_name=LIFECYCLE_QUEUE, connection=STORAGE_CONNECTION)
async def apply_lifecycle(msg: func.QueueMessage) -> None:
    """One verified lifecycle notification: renew, recreate, or request a resync."""
    async with keeping_last_error(LIFECYCLE_QUEUE, msg.get_body(), msg.dequeue_count, services()):
        await handle_lifecycle(json.loads(msg.get_body()), services())


# Failures, retries and the management API ----------------------------------------------------
# Every trigger queue's "-poison" queue turns what failed every delivery into a failed transaction.


@app.queue_trigger(
    arg_name="msg", queue_name=names.NOTIFICATIONS_QUEUE + names.POISON_SUFFIX, connection=STORAGE_CONNECTION
)
def poisoned_notification(msg: func.QueueMessage) -> None:
    """A notification that failed every delivery: a failed transaction, retried by the timer."""
    record_poisoned(names.NOTIFICATIONS_QUEUE, msg.get_body(), services())


@app.queue_trigger(
    arg_name="msg", queue_name=names.LIFECYCLE_QUEUE + names.POISON_SUFFIX, connection=STORAGE_CONNECTION
)
def poisoned_lifecycle(msg: func.QueueMessage) -> None:
    """A lifecycle message that failed every delivery: a failed transaction, retried by the timer."""
    record_poisoned(names.LIFECYCLE_QUEUE, msg.get_body(), services())


@app.queue_trigger(arg_name="msg", queue_name=names.RESYNC_QUEUE + names.POISON_SUFFIX, connection=STORAGE_CONNECTION)
def poisoned_resync(msg: func.QueueMessage) -> None:
    """A resync request that failed every delivery: a failed transaction, retried by the timer."""
    record_poisoned(names.RESYNC_QUEUE, msg.get_body(), services())


@app.queue_trigger(
    arg_name="msg", queue_name=names.PUBLICATIONS_QUEUE + names.POISON_SUFFIX, connection=STORAGE_CONNECTION
)
def poisoned_publication(msg: func.QueueMessage) -> None:
    """A Dime.Scheduler publication that failed every delivery: a failed transaction, retried by the timer."""
    record_poisoned(names.PUBLICATIONS_QUEUE, msg.get_body(), services())


@app.timer_trigger(schedule="%RETRY_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def retry_failed(timer: func.TimerRequest) -> None:
    """Failed transactions that are due (transient codes, backoff, RETRY_MAX_ATTEMPTS) run again."""
    await retry_due(services())


@app.route(route=ADMIN_ROUTE_PREFIX + "/transactions", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_transactions_list(req: func.HttpRequest) -> func.HttpResponse:
    """Transactions by status, mailbox and date range, paged."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await list_transactions(dict(req.params), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/transactions/count", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_transactions_count(req: func.HttpRequest) -> func.HttpResponse:
    """How many transactions match the list's filters (before "retry/archive all matching")."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await count_transactions(dict(req.params), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/transactions/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def manage_transaction(req: func.HttpRequest) -> func.HttpResponse:
    """One transaction, with the payload a retry uses."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(get_transaction(req.route_params.get("id", ""), dict(req.params), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/transactions/retry", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_transactions_retry(req: func.HttpRequest) -> func.HttpResponse:
    """Retry the given transactions, or all matching a filter, now (permanent ones too)."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await retry_transactions(req.get_body(), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/transactions/archive", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_transactions_archive(req: func.HttpRequest) -> func.HttpResponse:
    """Archive the given failed transactions, or all matching a filter."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await archive_transactions(req.get_body(), services()))


@app.queue_trigger(arg_name="msg", queue_name=names.BULK_QUEUE, connection=STORAGE_CONNECTION)
async def bulk_transactions(msg: func.QueueMessage) -> None:
    """One page of a retry/archive of "all" that matched more than a page (then the next page)."""
    async with keeping_last_error(names.BULK_QUEUE, msg.get_body(), msg.dequeue_count, services()):
        await run_bulk(json.loads(msg.get_body()), services())


@app.queue_trigger(arg_name="msg", queue_name=names.BULK_QUEUE + names.POISON_SUFFIX, connection=STORAGE_CONNECTION)
def poisoned_bulk(msg: func.QueueMessage) -> None:
    """A bulk page that failed every delivery: a failed transaction, retried by the timer."""
    record_poisoned(names.BULK_QUEUE, msg.get_body(), services())


@app.route(route=ADMIN_ROUTE_PREFIX + "/links", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_links(req: func.HttpRequest) -> func.HttpResponse:
    """Outlook events and their Dime.Scheduler appointments, paged."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await list_links(dict(req.params), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/appointments/{guid}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_appointment(req: func.HttpRequest) -> func.HttpResponse:
    """One appointment: its links both ways, each side's last recorded state, its timeline."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await appointment_detail(req.route_params.get("guid", ""), dict(req.params), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/events", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_event(req: func.HttpRequest) -> func.HttpResponse:
    """One Outlook event (?mailbox=&eventId=): the page of the appointment it belongs to."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await event_detail(dict(req.params), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/status", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def manage_status(req: func.HttpRequest) -> func.HttpResponse:
    """Mailboxes, subscriptions, sync runs, queue depths and failed transactions by code."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(sync_status(dict(req.params), services()))


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Whether the settings load, no Key Vault reference is unresolved and storage answers (no values)."""
    return _http(health_check(services))


# Delta and reconcile: nothing missed when notifications are lost ------------------------


@app.timer_trigger(schedule="%DELTA_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def delta_timer(timer: func.TimerRequest) -> None:
    """calendarView/delta for every enabled mailbox, handed out in chunks on the chunk queue."""
    await fan_out(services(), DELTA)


@app.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def reconcile_timer(timer: func.TimerRequest) -> None:
    """The nightly check-up of every mailbox's linked events, handed out in chunks on the chunk queue."""
    await fan_out(services(), RECONCILE)


@app.queue_trigger(arg_name="msg", queue_name=names.MAILBOX_CHUNKS_QUEUE, connection=STORAGE_CONNECTION)
async def run_mailbox_chunk(msg: func.QueueMessage) -> None:
    """{"kind", "run", "mailboxIds"}: a timer's work for those mailboxes (the directory decides which)."""
    async with keeping_last_error(names.MAILBOX_CHUNKS_QUEUE, msg.get_body(), msg.dequeue_count, services()):
        await run_chunk(json.loads(msg.get_body()), services())


@app.queue_trigger(
    arg_name="msg", queue_name=names.MAILBOX_CHUNKS_QUEUE + names.POISON_SUFFIX, connection=STORAGE_CONNECTION
)
def poisoned_mailbox_chunk(msg: func.QueueMessage) -> None:
    """A chunk that failed every delivery: a failed transaction, retried by the timer."""
    record_poisoned(names.MAILBOX_CHUNKS_QUEUE, msg.get_body(), services())


@app.queue_trigger(arg_name="msg", queue_name=names.RESYNC_QUEUE, connection=STORAGE_CONNECTION)
async def resync_mailbox(msg: func.QueueMessage) -> None:
    """{"mailboxId", "reason"}: delta for that mailbox now (or continue its reconcile pass)."""
    async with keeping_last_error(names.RESYNC_QUEUE, msg.get_body(), msg.dequeue_count, services()):
        await resync(json.loads(msg.get_body()), services())


@app.route(
    route=ADMIN_ROUTE_PREFIX + "/resources/{mailbox}/resync", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS
)
async def manage_resource_resync(req: func.HttpRequest) -> func.HttpResponse:
    """Queue a resync of one mailbox (202), e.g. after fixing its consent or permissions."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await request_resync(req.route_params.get("mailbox", ""), dict(req.params), services()))


# Dime.Scheduler -> Outlook: the planner's appointments in each assigned person's calendar ----------


# Anonymous to the host on purpose: a function-level route also accepts the host keys, which the
# Graph notification URLs carry. The use case accepts DIME_PUBLICATIONS_KEY and nothing else.
@app.route(route="dime/publications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def dime_publications(req: func.HttpRequest) -> func.HttpResponse:
    """Dime.Scheduler's publications (webhook connector): parse, split, enqueue; 200 when queued or, for
    what no retry can fix, recorded once (Dime.Scheduler retries every other answer); 503 to be retried."""
    key = presented_key(req.params, req.headers)
    return _http(
        await receive_publications(req.get_body(), None, req.headers.get("Authorization"), services, presented_key=key)
    )


@app.route(route="dime/publications/{change}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def dime_publications_change(req: func.HttpRequest) -> func.HttpResponse:
    """The same, from a hook or connector whose URL names the change (created, updated, deleted)."""
    change, key = req.route_params.get("change", ""), presented_key(req.params, req.headers)
    return _http(
        await receive_publications(
            req.get_body(), change, req.headers.get("Authorization"), services, presented_key=key
        )
    )


@app.queue_trigger(arg_name="msg", queue_name=names.PUBLICATIONS_QUEUE, connection=STORAGE_CONNECTION)
async def apply_dime_publication(msg: func.QueueMessage) -> None:
    """One appointment: create, update or delete its Outlook event for each eligible resource."""
    async with keeping_last_error(names.PUBLICATIONS_QUEUE, msg.get_body(), msg.dequeue_count, services()):
        await apply_publication(json.loads(msg.get_body()), services())


@app.timer_trigger(schedule="%DIME_RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def dime_reconcile_timer(timer: func.TimerRequest) -> None:
    """Outlook converges to the planning board: missing events created, stale updated, vanished deleted."""
    await run_dime_reconcile(services())


@app.route(
    route=ADMIN_ROUTE_PREFIX + "/dime/hooks", methods=["GET", "PUT", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS
)
async def manage_dime_hooks(req: func.HttpRequest) -> func.HttpResponse:
    """Register (PUT), list (GET) or remove (DELETE) the appointment hooks of every DIME_SOURCE_APPS app."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await manage_hooks(req.method, services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/rules", methods=["GET", "PUT"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_rules(req: func.HttpRequest) -> func.HttpResponse:
    """The rules that decide which planner appointments reach Outlook and how they look (GET, PUT)."""
    if (refusal := _refused(req)) is not None:
        return refusal
    if req.method == "GET":
        return _http(await get_rules(services()))
    return _http(await put_rules(req.get_body(), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/rules/preview", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_rules_preview(req: func.HttpRequest) -> func.HttpResponse:
    """What a draft rule set would change over the next two weeks, per person (nothing is written)."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await preview_rules(req.get_body(), services()))


@app.route(route=ADMIN_ROUTE_PREFIX + "/unmatched", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_unmatched(req: func.HttpRequest) -> func.HttpResponse:
    """Planner events whose appointment is gone, and assignments that could not reach a calendar."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(await unmatched(services()))


# The admin console: static files (anonymous, they hold no data) on top of the management API ----


@app.route(route="console/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest) -> func.HttpResponse:
    """The console's page, scripts and styles, with a strict Content-Security-Policy."""
    return _http(console_asset(req.route_params.get("path"), req.headers.get("if-none-match")))


@app.route(route=ADMIN_ROUTE_PREFIX + "/console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def manage_console_settings(req: func.HttpRequest) -> func.HttpResponse:
    """What the console reads from the settings (the Application Insights link)."""
    if (refusal := _refused(req)) is not None:
        return refusal
    return _http(console_settings(dict(req.params), services()))


# Each person's own consent page: who they are comes from App Service Authentication's principal --


@app.route(route="session", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_session(req: func.HttpRequest) -> func.HttpResponse:
    """Whether App Service Authentication is on and who is signed in (the console's first call)."""
    return _http(session(req.headers, services()))


@app.route(route="me", methods=["GET", "PATCH"], auth_level=func.AuthLevel.ANONYMOUS)
async def my_consent(req: func.HttpRequest) -> func.HttpResponse:
    """The signed-in person's own consent: read it (GET) or change it (PATCH; locked fields 403)."""
    return _http(await my_settings(req.method, req.headers, req.get_body(), services()))


@app.route(route="me/preview", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def my_consent_preview(req: func.HttpRequest) -> func.HttpResponse:
    """What the board would show of the signed-in person's next 7 days with a draft consent."""
    return _http(await preview(req.headers, req.get_body(), services()))
