"""Admin queries over transactions, without I/O: public ids, filters, paging tokens.

Public id: "<row key>.<base64url(mailbox)>". The row key is time-ordered and has no ".", the
mailbox part is base64url, so the id is URL-safe, sorts by time, and names both keys of the row:
`GET .../transactions/{id}` is one point read.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from shared.core.ids import decode_key, encode_key
from shared.core.transactions import Status

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_ROW_KEY = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{1,32}$")
_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class QueryError(ValueError):
    """A malformed filter, id or paging argument; the message is safe to return (HTTP 400)."""


def public_id(mailbox_id: str, row_key: str) -> str:
    return f"{row_key}.{encode_key(mailbox_id)}"


def parse_public_id(value: str) -> tuple[str, str] | None:
    """(mailbox, row key) of a public id; None when it cannot be one of ours (answer 404)."""
    row_key, dot, encoded = value.partition(".")
    if not dot or not _ROW_KEY.match(row_key) or not encoded:
        return None
    try:
        mailbox = decode_key(encoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not is_key_safe(mailbox):
        return None
    return mailbox, row_key


def is_key_safe(value: str) -> bool:
    """Usable as a mailbox PartitionKey as is: no / \\ # ? or control characters, not too long, and
    not starting with "~" (the index partitions of the transactions table)."""
    return 0 < len(value) <= 256 and not value.startswith("~") and not _FORBIDDEN_KEY_CHARS.search(value)


def row_key_bound(moment: datetime) -> str:
    """The row-key prefix of a moment: row keys compare like the times they were made."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def parse_moment(value: str, name: str) -> datetime:
    """ISO 8601 date or date-time; without a zone it is UTC."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name} must be an ISO 8601 date or date-time, got {value[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TransactionFilter:
    status: Status | None = None
    mailbox: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    direction: str | None = None
    error_code: str | None = None


DIRECTIONS = ("outlook-to-dime", "dime-to-outlook")
FILTER_FIELDS = ("status", "mailbox", "since", "until", "direction", "errorCode")
_ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def parse_filter(values: Mapping[str, Any], *, default_status: Status | None = None) -> TransactionFilter:
    """status, mailbox, since, until, direction, errorCode (query string or the JSON `filter`
    object); QueryError if bad."""
    unknown = set(values) - set(FILTER_FIELDS)
    if unknown:
        raise QueryError(f"unknown filter field(s): {', '.join(sorted(unknown))}")
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise QueryError(f"filter field {key} must be a string")
    status = default_status
    raw_status = (values.get("status") or "").strip()
    if raw_status:
        try:
            status = Status(raw_status.lower())
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            raise QueryError(f"unknown status {raw_status[:40]!r} (one of: {allowed})") from None
    mailbox = (values.get("mailbox") or "").strip().lower() or None
    if mailbox is not None and not is_key_safe(mailbox):
        raise QueryError("mailbox is not a valid mailbox id")
    since = parse_moment(values["since"], "since") if values.get("since") else None
    until = parse_moment(values["until"], "until") if values.get("until") else None
    if since and until and until <= since:
        raise QueryError("until must be after since")
    direction, error_code = _direction_and_code(values)
    return TransactionFilter(status, mailbox, since, until, direction, error_code)


def _direction_and_code(values: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The console's two extra filters: a known direction, an error code as the codes are spelled."""
    direction = (values.get("direction") or "").strip().lower() or None
    if direction is not None and direction not in DIRECTIONS:
        raise QueryError(f"unknown direction {direction[:40]!r} (one of: {', '.join(DIRECTIONS)})")
    error_code = (values.get("errorCode") or "").strip().upper() or None
    if error_code is not None and not _ERROR_CODE.match(error_code):
        raise QueryError("errorCode must be an error code such as DIME_UNAVAILABLE")
    return direction, error_code


def parse_page_size(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        raise QueryError(f"pageSize must be a whole number, got {value[:20]!r}") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise QueryError(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    return size


def encode_token(token: Any) -> str | None:
    """The table's continuation token (a small dict) as an opaque URL-safe string."""
    if not token:
        return None
    raw = json.dumps(token, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(value: str | None) -> Any:
    if not value:
        return None
    try:
        token = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise QueryError("continuationToken is not a token this API issued") from None
    if not isinstance(token, dict) or not all(isinstance(v, str | None) for v in token.values()):
        raise QueryError("continuationToken is not a token this API issued")
    return token
