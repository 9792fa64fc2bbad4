"""Azure Functions triggers, and nothing else: each parses its input and calls one use case.

Heavy imports (msgraph, azure SDKs) happen inside the use cases on first use, so this module
imports in milliseconds and Flex Consumption starts fast.
"""

import json

import azure.functions as func

from shared.names import NOTIFICATIONS_QUEUE, STORAGE_CONNECTION
from shared.services import services
from shared.usecases.sync_event import apply_notification
from shared.usecases.webhook import receive_notifications

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _http(answer) -> func.HttpResponse:
    return func.HttpResponse(
        answer.body, status_code=answer.status, mimetype=answer.content_type.split(";")[0], charset="utf-8"
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
    """One verified notification: bring that event to Dime.Scheduler."""
    await apply_notification(json.loads(msg.get_body()), services())
