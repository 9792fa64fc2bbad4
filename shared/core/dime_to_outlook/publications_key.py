"""The publications routes' own key: who may post to them, and what a hook was registered with.

In Azure Functions a function-level route also accepts every host key, and the host key is the
one the Graph notification URLs carry (it leaks with any of them). So the publications routes are
anonymous to the host and check DIME_PUBLICATIONS_KEY here: a key that opens nothing else and that
nothing else carries. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

KEY_PARAMETER = "code"  # ?code=, where Functions keys ride (and where Dime.Scheduler's URL field puts it)
KEY_HEADER = "x-functions-key"
MIN_KEY_LENGTH = 32  # characters: a key nobody guesses
_MAX_PRESENTED = 1024  # longer is not a key: refused without hashing a megabyte


def presented_key(params: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The key a caller sent: `?code=`, else the `x-functions-key` header (as the host reads them)."""
    value = params.get(KEY_PARAMETER)
    if not value:
        value = next((v for k, v in headers.items() if k.lower() == KEY_HEADER), None)
    return value or None


def key_is_valid(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Whether the presented key is one of ours (current, or previous during a rotation).

    Both sides are hashed first (compare_digest returns at once on different lengths, which would
    tell the caller the key's length) and every key is compared (no early exit): constant time."""
    if not presented or len(presented) > _MAX_PRESENTED or not keys:
        return False
    given = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(given, hashlib.sha256(key.encode("utf-8")).digest())
    return valid


def refusal_reason(presented: str | None) -> str:
    """What one refused request is logged as (never the key): missing, or a wrong one."""
    return "no key" if not presented else "another key (the host key? another function's?)"


def keyed_url(publications_url: str, change: str | None, key: str) -> str:
    """The URL a hook or connector posts to: `.../publications[/change]?code=<key>`.

    Any `code` already in DIME_PUBLICATIONS_URL is dropped (an older install put the host key
    there: it must never be handed to Dime.Scheduler again); other query parameters are kept."""
    parts = urlsplit(publications_url)
    path = parts.path.rstrip("/") + ("/" + change if change else "")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != KEY_PARAMETER]
    query.append((KEY_PARAMETER, key))
    return urlunsplit(parts._replace(path=path, query=urlencode(query), fragment=""))


def shown_url(url: str) -> str:
    """A URL as the hooks table and the management API may show it: without its query (the key)."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


def hook_fingerprint(key: str, url: str) -> str:
    """What a hook was registered with (its URL, key included), without revealing the key: the
    registration route and the renewal timer re-register every hook whose fingerprint is not the
    current one, so rotating DIME_PUBLICATIONS_KEY (or moving the app) completes by itself."""
    made_with = "\n".join(("dime hook v1", url))
    return hmac.new(key.encode("utf-8"), made_with.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
