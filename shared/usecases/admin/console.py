"""The admin console's static files (`GET /api/console/{*path}`, anonymous), and its settings.

The console is plain ES modules and CSS committed in `console/` (no build step, no CDN): the page
itself holds no data and no secret, so it is served without a key; every call it makes goes to the
management API with the management key the administrator types in (MANAGEMENT_KEY, in
`x-functions-key`), or, behind App Service Authentication, with the platform's session cookie
(shared/usecases/admin/access.py decides; /api/session tells the page which).

Only files that exist under `console/` with a known extension are served: the path must match a
strict pattern (lower-case names, no `..`, no backslash, no leading `/`) and must resolve inside the
folder, so nothing else of the app can be read through this route. Every answer carries a strict
Content-Security-Policy (scripts, styles and requests to this origin only, no inline script, no
framing) and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

from shared.services import Services
from shared.usecases.http_answer import HttpAnswer

ASSETS = Path(__file__).resolve().parent.parent.parent.parent / "console"
INDEX = "index.html"
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-cache"),  # revalidate (ETag): a deployment is seen at once
)
_PATH = re.compile(r"^(?:[a-z0-9][a-z0-9_-]*/){0,3}[a-z0-9][a-z0-9_-]*\.(html|js|css|svg)$")
MAX_PATH_CHARS = 200


def _answer(status: int, body: str, content_type: str, *extra: tuple[str, str]) -> HttpAnswer:
    return HttpAnswer(status, body, content_type, SECURITY_HEADERS + extra)


@lru_cache(maxsize=64)
def _read(relative: str) -> tuple[str, str] | None:
    """(text, etag) of an asset, or None; cached: the files change only with a deployment."""
    candidate = (ASSETS / relative).resolve()
    if not candidate.is_relative_to(ASSETS) or not candidate.is_file():
        return None
    text = candidate.read_text(encoding="utf-8")
    return text, '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + '"'


def console_asset(path: str | None, if_none_match: str | None = None) -> HttpAnswer:
    """One console file; the empty path is the page itself. 404 for anything else, 304 if unchanged."""
    relative = (path or "").strip() or INDEX
    match = _PATH.match(relative) if len(relative) <= MAX_PATH_CHARS else None
    found = _read(relative) if match else None
    if match is None or found is None:
        return _answer(404, "no such console file", "text/plain; charset=utf-8")
    text, etag = found
    if if_none_match and etag in (tag.strip() for tag in if_none_match.split(",")):
        return _answer(304, "", CONTENT_TYPES[match.group(1)], ("ETag", etag))
    return _answer(200, text, CONTENT_TYPES[match.group(1)], ("ETag", etag))


def console_settings(params: dict[str, str], services: Services) -> HttpAnswer:
    """GET {prefix}/console: what the page needs from the settings (the Application Insights link)."""
    from shared.core.api_format import unknown_params_reason

    if reason := unknown_params_reason(params, ()):
        return HttpAnswer(400, json.dumps({"error": reason}), "application/json; charset=utf-8")
    resource_id = services.settings.appinsights_resource_id
    link = f"https://portal.azure.com/#resource{resource_id}/logs" if resource_id else None
    body = {"applicationInsightsResourceId": resource_id, "applicationInsightsUrl": link}
    return HttpAnswer(200, json.dumps(body), "application/json; charset=utf-8")
