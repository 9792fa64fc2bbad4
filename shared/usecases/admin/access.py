"""The one place that decides who may use a management route (`/api/manage/...`).

Every management trigger in function_app.py starts with `refused(...)`: the routes are anonymous to
the Functions host (its `admin` level accepts the master key and nothing else) and accept instead
the management key or a signed-in Connector.Admin (shared/core/principal.py says how each is
recognised and when the principal header is trusted at all).

A refusal costs O(1): the settings already loaded, the headers, a hash; no storage, no Graph. It is
answered 401 (no credentials, a wrong key, an unreadable principal) or 403 (a signed-in person
without the role), and counted in one aggregated log line per minute (RefusalLog): the routes can
be reached by anyone, and a flood of refusals must not become a flood of billed log lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from shared.core.dime_to_outlook.publications_key import KEY_HEADER, KEY_PARAMETER
from shared.core.principal import ADMIN_ROLE, Access, header, management_access
from shared.services import Services
from shared.usecases.dime_to_outlook.inbound import RefusalLog
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

REFUSALS = RefusalLog(what="management request(s) without the management key or the Connector.Admin role", logger=log)
JSON = "application/json; charset=utf-8"


def access_of(headers: Mapping[str, str], params: Mapping[str, str], services: Services, method: str = "GET") -> Access:
    """What the guard decides for this request (see shared/core/principal.management_access). The
    key is read from `x-functions-key` first (what the console sends), else from `?code=`: a caller
    may carry the host key in one and ours in the other (the local runner does)."""
    settings = services.settings
    presented = header(headers, KEY_HEADER) or params.get(KEY_PARAMETER) or None
    return management_access(headers, presented, settings.management_keys, settings.app_service_auth, method)


def refused(
    headers: Mapping[str, str], params: Mapping[str, str], services: Services, method: str = "GET"
) -> HttpAnswer | None:
    """None when the request may go on; else the 401/403 answer (and the refusal is counted)."""
    access = access_of(headers, params, services, method)
    if access.allowed:
        return None
    REFUSALS.record(access.reason)
    if access.status == 403 and access.principal is not None and access.principal.is_admin:
        reason = "a change needs the X-Requested-With header (sent by the console): refused as cross-site"
    elif access.status == 403:
        reason = f"you are signed in, but without the {ADMIN_ROLE} app role; ask an administrator to assign it"
    elif services.settings.app_service_auth:
        reason = "sign in with Entra ID (an administrator holding Connector.Admin), or send the management key"
    else:
        reason = "send the management key (app setting MANAGEMENT_KEY) in the x-functions-key header"
    return HttpAnswer(access.status, json.dumps({"error": reason}), JSON)
