"""Registering (and removing) Dime.Scheduler's appointment hooks for each configured source app.

`PUT /api/manage/dime/hooks`: for every source app in DIME_SOURCE_APPS, the three hooks
AppointmentCreated, AppointmentUpdated and AppointmentDeleted, each pointing at
`/api/dime/publications/{created|updated|deleted}` (the URL carries the change: the payload does
not), with the function key of DIME_PUBLICATIONS_URL. Hooks already in the `dimehooks` table are
kept. `DELETE` removes them; `GET` lists them. Where the 201 answer carries the hook id is
unverified: the `Location` header's last segment, else an id in the body.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared.adapters.storage.hook_rows import delete_hook_row, list_hooks, save_hook
from shared.core.transactions import SyncError
from shared.services import Services
from shared.usecases.http_answer import HttpAnswer

log = logging.getLogger(__name__)

HOOK_TYPES = {
    "AppointmentCreated": ("created", "Create"),
    "AppointmentUpdated": ("updated", "Update"),
    "AppointmentDeleted": ("deleted", "Delete"),
}


def hook_url(publications_url: str, change: str) -> str:
    parts = urlsplit(publications_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + change))


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


async def manage_hooks(method: str, services: Services) -> HttpAnswer:
    store = services.store
    if method == "GET":
        return _json(200, {"hooks": await asyncio.to_thread(list_hooks, store)})
    if method == "DELETE":
        removed, errors = [], []
        for hook in await asyncio.to_thread(list_hooks, store):
            try:
                if hook["hookId"]:
                    await asyncio.to_thread(services.dime.delete_hook, hook["type"], hook["hookId"])
                await asyncio.to_thread(delete_hook_row, store, hook["sourceApp"], hook["type"])
                removed.append(hook)
            except SyncError as error:
                errors.append({**hook, "error": error.code.value, "message": error.message})
        return _json(502 if errors else 200, {"removed": removed, "errors": errors})
    settings = services.settings
    if not settings.dime_source_apps or not settings.dime_publications_url:
        return _json(400, {"error": "set DIME_SOURCE_APPS and DIME_PUBLICATIONS_URL first"})
    existing = {(h["sourceApp"], h["type"]) for h in await asyncio.to_thread(list_hooks, store)}
    created, errors = [], []
    for source_app in settings.dime_source_apps:
        for hook_type, (change, change_type) in HOOK_TYPES.items():
            if (source_app, hook_type) in existing:
                continue
            url = hook_url(settings.dime_publications_url, change)
            body = {
                "sourceApp": source_app,
                "name": f"Outlook connector ({change})",
                "notificationURL": url,
                "resource": "Appointments",
                "changeType": [change_type],
            }
            try:
                answer, headers = await asyncio.to_thread(services.dime.create_hook, hook_type, body)
            except SyncError as error:
                errors.append(
                    {"sourceApp": source_app, "type": hook_type, "error": error.code.value, "message": error.message}
                )
                continue
            hook_id = hook_id_of(answer, headers)
            if hook_id is None:
                errors.append(
                    {
                        "sourceApp": source_app,
                        "type": hook_type,
                        "error": "HOOK_ID_UNKNOWN",
                        "message": "Dime.Scheduler created the hook but named no id (Location or body)",
                    }
                )
            now = services.clock().isoformat()
            shown = hook_url(urlunsplit(urlsplit(settings.dime_publications_url)._replace(query="")), change)
            await asyncio.to_thread(save_hook, store, source_app, hook_type, hook_id or "", shown, now)
            created.append({"sourceApp": source_app, "type": hook_type, "hookId": hook_id or ""})
    status = 502 if errors else (201 if created else 200)
    return _json(status, {"created": created, "kept": len(existing), "errors": errors})


def _json(status: int, body: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(body), "application/json; charset=utf-8")
