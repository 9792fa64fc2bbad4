"""Registering (and removing) Dime.Scheduler's appointment hooks for each configured source app.

`PUT /api/manage/dime/hooks`: for every source app in DIME_SOURCE_APPS, the three hooks
AppointmentCreated, AppointmentUpdated and AppointmentDeleted, each pointing at
`/api/dime/publications/{created|updated|deleted}?code=<DIME_PUBLICATIONS_KEY>` (the URL carries
the change: the payload does not; and the routes' own key, never a host key). Hooks already in the
`dimehooks` table are kept while their fingerprint (core hook_fingerprint of the keyed URL) is the
current one; a hook made with another key or URL (a rotation, a move) is registered again: the new
hook first, then the old one deleted, so no publication falls in between (the previous key is
still accepted meanwhile). The renewal timer does the same for the hooks in the table
(`reregister_hooks`), so a rotation completes without an administrator. `DELETE` removes them;
`GET` lists them. Where the 201 answer carries the hook id is unverified: the `Location` header's
last segment, else an id in the body.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from shared.adapters.storage.hook_rows import HookRow, delete_hook_row, hook_rows, list_hooks, save_hook_row
from shared.core.dime_to_outlook.publications_key import hook_fingerprint, keyed_url, shown_url
from shared.core.transactions import SyncError
from shared.services import Services
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

HOOK_TYPES = {
    "AppointmentCreated": ("created", "Create"),
    "AppointmentUpdated": ("updated", "Update"),
    "AppointmentDeleted": ("deleted", "Delete"),
}


def hook_url(publications_url: str, change: str, key: str) -> str:
    """The URL a hook of this change posts to, with the publications key in ?code=."""
    return keyed_url(publications_url, change, key)


def hook_id_of(body: Any, headers: dict[str, str]) -> str | None:
    """The new hook's id: the Location header's last path segment, else `id`/`hookId` in the body."""
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    if location:
        segment = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
        if segment and segment.lower() not in {t.lower() for t in HOOK_TYPES}:
            return segment
    if isinstance(body, dict):
        for key, value in body.items():
            if key.lower() in ("id", "hookid", "hook_id") and isinstance(value, str | int) and str(value):
                return str(value)
    if isinstance(body, str | int) and str(body).strip():
        return str(body).strip().strip('"')
    return None


@dataclass
class Registration:
    """What one registration pass did (the PUT's answer, the timer's log line)."""

    created: list[dict[str, str]] = field(default_factory=list)
    replaced: list[dict[str, str]] = field(default_factory=list)
    kept: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def error(self, source_app: str, hook_type: str, code: str, message: str) -> None:
        self.errors.append({"sourceApp": source_app, "type": hook_type, "error": code, "message": message})


async def manage_hooks(method: str, services: Services) -> HttpAnswer:
    store = services.store
    if method == "GET":
        return _json(200, {"hooks": await asyncio.to_thread(list_hooks, store)})
    if method == "DELETE":
        removed, errors = [], []
        for row in await asyncio.to_thread(hook_rows, store):
            try:
                for hook_id in (row.previous_hook_id, row.hook_id):
                    if hook_id:
                        await services.adime.delete_hook(row.type, hook_id)
                await asyncio.to_thread(delete_hook_row, store, row.source_app, row.type)
                removed.append(row.shown())
            except SyncError as error:
                errors.append({**row.shown(), "error": error.code.value, "message": error.message})
        return _json(502 if errors else 200, {"removed": removed, "errors": errors})
    settings = services.settings
    if not settings.dime_source_apps or not settings.dime_publications_url:
        return _json(400, {"error": "set DIME_SOURCE_APPS and DIME_PUBLICATIONS_URL first"})
    report = await register_hooks(services, only_existing=False)
    status = 502 if report.errors else (201 if report.created or report.replaced else 200)
    body = {"created": report.created, "replaced": report.replaced, "kept": report.kept, "errors": report.errors}
    return _json(status, body)


async def reregister_hooks(services: Services) -> Registration:
    """The renewal timer's part: re-register the hooks in the table that were made with another key
    or URL (never registers a missing one: that is the administrator's PUT)."""
    settings = services.settings
    if not settings.dime_source_apps or not settings.dime_publications_url:
        return Registration()
    report = await register_hooks(services, only_existing=True)
    if report.replaced or report.errors:
        log.warning(
            "Dime.Scheduler hooks: re-registered %d under the current publications key; kept %d; %d error(s): %s",
            len(report.replaced),
            report.kept,
            len(report.errors),
            "; ".join(f"{e['sourceApp']}/{e['type']}: {e['error']}" for e in report.errors[:10]),
        )
    return report


async def register_hooks(services: Services, *, only_existing: bool) -> Registration:
    """Every (source app, hook type): keep it when made with the current keyed URL, else register
    it (again). A replaced hook is deleted at Dime.Scheduler only after its successor is saved."""
    settings, store = services.settings, services.store
    assert settings.dime_publications_url is not None
    key = settings.dime_publications_keys[0]
    rows = {(row.source_app, row.type): row for row in await asyncio.to_thread(hook_rows, store)}
    report = Registration()
    for source_app in settings.dime_source_apps:
        for hook_type, (change, change_type) in HOOK_TYPES.items():
            url = hook_url(settings.dime_publications_url, change, key)
            made_with = hook_fingerprint(key, url)
            row = rows.get((source_app, hook_type))
            if row is None and only_existing:
                continue
            if row is not None and row.made_with == made_with:
                report.kept += 1
                if row.previous_hook_id:
                    await _delete_previous(services, row, report)
                continue
            if row is not None and row.previous_hook_id and not await _delete_previous(services, row, report):
                continue  # one replaced hook waiting at a time: never lose track of an id
            body = {
                "sourceApp": source_app,
                "name": f"Outlook connector ({change})",
                "notificationURL": url,
                "resource": "Appointments",
                "changeType": [change_type],
            }
            try:
                answer, headers = await services.adime.create_hook(hook_type, body)
            except SyncError as error:
                report.error(source_app, hook_type, error.code.value, error.message)
                continue
            hook_id = hook_id_of(answer, headers)
            if hook_id is None:
                report.error(
                    source_app,
                    hook_type,
                    "HOOK_ID_UNKNOWN",
                    "Dime.Scheduler created the hook but named no id (Location or body)",
                )
            now = services.clock().isoformat()
            previous = row.hook_id if row is not None else ""
            new_row = HookRow(source_app, hook_type, hook_id or "", shown_url(url), now, made_with, previous)
            await asyncio.to_thread(save_hook_row, store, new_row)
            shown = {"sourceApp": source_app, "type": hook_type, "hookId": hook_id or ""}
            if row is None:
                report.created.append(shown)
                continue
            report.replaced.append({**shown, "previousHookId": previous})
            if previous:
                await _delete_previous(services, new_row, report)
            else:  # registered again so deliveries go on under the new key; the old one we cannot name
                report.error(
                    source_app,
                    hook_type,
                    "HOOK_NOT_REMOVED",
                    "the replaced hook's id was never named by Dime.Scheduler: remove it there",
                )
    return report


async def _delete_previous(services: Services, row: HookRow, report: Registration) -> bool:
    """Delete the hook a row replaced (404 counts as done); on failure it stays in the row."""
    try:
        await services.adime.delete_hook(row.type, row.previous_hook_id)
    except SyncError as error:
        report.error(row.source_app, row.type, "HOOK_NOT_REMOVED", f"{row.previous_hook_id}: {error.message}")
        return False
    await asyncio.to_thread(save_hook_row, services.store, replace(row, previous_hook_id=""))
    return True


def _json(status: int, body: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(body), "application/json; charset=utf-8")
