"""`/api/manage/rules`: read and save the rule set that decides which appointments reach Outlook.

`GET` answers the rules in force with their version; `PUT` takes `{"rules": [...], "version": …}`,
reads every rule first (a rule that cannot be read is a 400 naming where, and nothing is saved),
saves only if nobody saved meanwhile (409 otherwise: reload, then save again), and applies the
rules to everyone's calendar in the background. `POST /api/manage/rules/preview` takes a draft and
answers what it would change over the next two weeks, per person, reading the planning board
once. What a rule is and how it is evaluated lives in `shared/core/dime_to_outlook/rules.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.storage.rules_rows import RulesTooLarge, read_rules_row, save_rules_row
from shared.adapters.storage.tables import ConcurrentUpdate
from shared.core.dime_to_outlook.publication import PublicationError, items_of, parse_publication, zone_named
from shared.core.dime_to_outlook.rule_facts import facts_of
from shared.core.dime_to_outlook.rules import RuleError, read_rules, write_rules
from shared.core.dime_to_outlook.rules_preview import Placement, preview
from shared.core.transactions import SyncError
from shared.services import Services
from shared.usecases.dime_to_outlook.rules_in_force import forget_rules
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 512 * 1024
PREVIEW_DAYS = 14
PREVIEW_MAX_APPOINTMENTS = 5_000  # beyond, the preview says it is partial
RESOURCES_PER_REQUEST = 20  # as the reconcile's listing


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
    applying = await _apply_to_everyone(services)
    return _json(
        200, {"rules": canonical, "version": new_version, "updatedAt": now, "updatedBy": by, "applying": applying}
    )


async def _apply_to_everyone(services: Services) -> str:
    """One resync message (reason `rules`) per onboarded person: the reconcile places, reshapes or
    removes their planner events under the new rules, a person at a time, in the background. If
    the queue cannot be reached the rules are saved all the same and the nightly reconcile applies
    them; the answer says so."""
    from shared.names import RESYNC_QUEUE
    from shared.usecases.resync import RULES

    try:
        people = await services.astore.list_resources()
        messages = [{"mailboxId": p.object_id, "reason": RULES} for p in people]
        await services.aqueues.send_many(RESYNC_QUEUE, messages)
    except Exception:
        log.exception("rules saved, but the reconcile could not be queued; the nightly reconcile applies them")
        return "Saved, but applying them now could not be queued: the nightly reconcile applies them."
    return f"Applying them now to the calendars of {len(messages)} people."


def _json(status: int, body: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(body), "application/json; charset=utf-8")


async def preview_rules(body: bytes, services: Services) -> HttpAnswer:
    """What the draft would change, per person, over the next PREVIEW_DAYS: the planning board is
    read once (`GET /appointment`, 20 resources a request), each appointment's eligible people
    found as the worker finds them, and both rule sets evaluated purely. Nothing is written."""
    from shared.usecases.dime_to_outlook.place_appointment import Mailboxes, resource_directory, targets_of
    from shared.usecases.dime_to_outlook.rules_in_force import rules_in_force

    if len(body) > MAX_BODY_BYTES:
        return _json(413, {"error": f"at most {MAX_BODY_BYTES} bytes"})
    try:
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
            return _json(400, {"error": 'expected {"rules": [...]}: the draft to compare with the rules in force'})
        draft = read_rules(document["rules"])
    except ValueError as error:  # RuleError is a ValueError; so is a body that is not JSON
        return _json(400, {"error": str(error)[:500]})
    now = services.clock().astimezone(UTC)
    start, end = now, now + timedelta(days=PREVIEW_DAYS)
    try:
        current = await rules_in_force(services, fresh=True)
        directory = await resource_directory(services)
        mailboxes = await Mailboxes.read(services)
        numbers = [
            r.resource_no
            for r in directory.values()
            if r.exchange_enabled and r.email and await mailboxes.of(r.email) is not None
        ]
        zone = zone_named(services.settings.dime_time_zone)
        publications, unreadable, partial = {}, 0, False
        for offset in range(0, len(numbers), RESOURCES_PER_REQUEST):
            chunk = numbers[offset : offset + RESOURCES_PER_REQUEST]
            listing = await services.adime.list_appointments(_iso(start), _iso(end), chunk)
            for item in items_of(listing):
                try:
                    pub = parse_publication(item, zone)
                except PublicationError:
                    unreadable += 1
                    continue
                if pub.has_times and len(publications) < PREVIEW_MAX_APPOINTMENTS:
                    publications[pub.guid] = pub
                partial = partial or len(publications) >= PREVIEW_MAX_APPOINTMENTS
        placements = []
        for pub in publications.values():
            targets, _ = await targets_of(services, pub, mailboxes)
            placements += [
                Placement(t.email, t.resource, pub.guid, pub.subject, pub.start, facts_of(pub, t.resource))
                for t in targets.values()
            ]
    except (SyncError, PublicationError) as error:
        return _json(502, {"error": f"could not read the planning board: {str(error)[:300]}"})
    result = preview(current, draft, placements)
    return _json(
        200,
        {
            **result,
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "appointments": len(publications),
            "unreadable": unreadable,
            "partial": partial,
        },
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
