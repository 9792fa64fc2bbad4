"""What every management API answer looks like, and what every request may carry, without I/O.

One list shape (`items`, plus `continuationToken` only when there is a next page), one time format
(ISO 8601 UTC, "2026-11-24T09:00:00Z"), camelCase keys, and no unknown query parameter or body
field: a typo (`?stauts=failed`) must be refused, not silently ignored (listing everything, or
retrying for real what was meant as a dry run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

# Keys ride in ?code= (the host's function keys; the management key may too): every route accepts it.
HOST_PARAMS = frozenset({"code"})


def unknown_names(given: Iterable[str], allowed: Iterable[str], *, host: bool = True) -> list[str]:
    """The names not allowed (sorted); the host's own `code` is always allowed for query strings."""
    permitted = set(allowed) | (HOST_PARAMS if host else set())
    return sorted(set(given) - permitted)


def unknown_params_reason(params: Mapping[str, Any], allowed: Iterable[str]) -> str | None:
    """The 400 reason for a query string with an unknown parameter, or None."""
    unknown = unknown_names(params, allowed)
    if not unknown:
        return None
    names = ", ".join(sorted(allowed)) or "none"
    return f"unknown parameter(s): {', '.join(n[:40] for n in unknown)} (allowed: {names})"


def iso_utc(value: Any) -> str | None:
    """A stored time (datetime or ISO 8601 text, any offset, up to 7 fractional digits) as
    "YYYY-MM-DDTHH:MM:SSZ" (whole seconds, UTC); None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
        head, dot, rest = text.partition(".")
        if dot:  # drop the fraction (Graph sends 7 digits, fromisoformat takes 6)
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = head + rest[digits:]
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def page(items: list[Any], continuation_token: str | None) -> dict[str, Any]:
    """The one list shape: the token only when there is a next page."""
    body: dict[str, Any] = {"items": items}
    if continuation_token:
        body["continuationToken"] = continuation_token
    return body


def camel(name: str) -> str:
    """A table column ("LastRunAt", "RowKey") as an API key ("lastRunAt", "rowKey")."""
    return name[:1].lower() + name[1:]
