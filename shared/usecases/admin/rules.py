"""`/api/manage/rules`: read and save the rule set that decides which appointments reach Outlook.

`GET` answers the rules in force with their version; `PUT` takes `{"rules": [...], "version": …}`,
reads every rule first (a rule that cannot be read is a 400 naming where, and nothing is saved),
and saves only if nobody saved meanwhile (409 otherwise: reload, then save again). What a rule is
and how it is evaluated lives in `shared/core/dime_to_outlook/rules.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from shared.adapters.storage.rules_rows import RulesTooLarge, read_rules_row, save_rules_row
from shared.adapters.storage.tables import ConcurrentUpdate
from shared.core.dime_to_outlook.rules import RuleError, read_rules, write_rules
from shared.services import Services
from shared.usecases.dime_to_outlook.rules_in_force import forget_rules
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 512 * 1024


async def get_rules(services: Services) -> HttpAnswer:
    stored = await asyncio.to_thread(read_rules_row, services.store)
    return _json(
        200,
        {
            "rules": stored.document,
            "version": stored.version,
            "updatedAt": stored.updated_at,
            "updatedBy": stored.updated_by,
        },
    )


async def put_rules(body: bytes, services: Services, by: str = "administrator") -> HttpAnswer:
    if len(body) > MAX_BODY_BYTES:
        return _json(413, {"error": f"at most {MAX_BODY_BYTES} bytes"})
    try:
        document = json.loads(body)
    except ValueError as error:
        return _json(400, {"error": f"the body is not JSON: {str(error)[:200]}"})
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        return _json(400, {"error": 'expected {"rules": [...], "version": "<the version you read, or null>"}'})
    version = document.get("version")
    if version is not None and not isinstance(version, str):
        return _json(400, {"error": "version: the version GET answered (a string), or null for the first save"})
    try:
        rules = read_rules(document["rules"])
    except RuleError as error:
        return _json(400, {"error": str(error)})
    canonical = write_rules(rules)
    now = services.clock().isoformat()
    try:
        new_version = await asyncio.to_thread(save_rules_row, services.store, canonical, version, now, by)
    except ConcurrentUpdate:
        return _json(409, {"error": "the rules were saved by someone else meanwhile: reload them and save again"})
    except RulesTooLarge as error:
        return _json(413, {"error": str(error)})
    forget_rules(services)
    log.info("rules saved by %s: %d rule(s), version %s", by, len(canonical), new_version)
    return _json(200, {"rules": canonical, "version": new_version, "updatedAt": now, "updatedBy": by})


def _json(status: int, body: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(body), "application/json; charset=utf-8")
