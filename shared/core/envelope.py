"""Reading Dime.Scheduler's answers: keys case-insensitively, failures inside a 200 recognised.

The vendor's .NET SDK reads the envelope (``ImportResponse``: Content, ContentType, StatusCode) with
``PropertyNameCaseInsensitive = true``
(https://github.com/dime-scheduler/sdk-dotnet/blob/main/src/Endpoints/Base/Endpoint.cs), so
``statusCode``, ``StatusCode`` and ``statuscode`` are the same key here too.
"""

from __future__ import annotations

import re
from typing import Any

from shared.core.transactions import ErrorCode


def get_ci(document: Any, key: str) -> Any:
    """document[key], matching the key case-insensitively (None when absent or not a dict)."""
    if not isinstance(document, dict):
        return None
    if key in document:
        return document[key]
    low = key.lower()
    for name, value in document.items():
        if isinstance(name, str) and name.lower() == low:
            return value
    return None


def has_ci(document: Any, key: str) -> bool:
    return isinstance(document, dict) and any(isinstance(k, str) and k.lower() == key.lower() for k in document)


def content_failure(content: Any) -> str | None:
    """Why an import's inner content is a failure (``"Success": false`` or a non-empty
    ``Error``), or None when it is not."""
    if not isinstance(content, dict):
        return None
    error = get_ci(content, "Error")
    if error not in (None, "", [], {}):
        return str(error)
    success = get_ci(content, "Success")
    if success is False or (isinstance(success, str) and success.strip().lower() == "false"):
        return str(get_ci(content, "Message") or get_ci(content, "Description") or "Success: false")
    return None


# Classifying a failed call by its code or number, never by a word of its message (observed, docs/verification.md:
# a SQL deadlock, which is transient, reads "... deadlocked on lock resources ...", and a
# word match once filed it as a permanent "resource unknown").
#
# SQL Server error numbers a retry can fix: 1205 deadlock victim, 1222 lock request time-out, -2
# client time-out, and Azure SQL's documented transient errors (Microsoft Learn, "Troubleshoot
# transient connection errors": 4060, 4221, 10928, 10929, 40197, 40501, 40613, 49918-49920, and
# the connection errors 20, 64, 233).
TRANSIENT_SQL_ERRORS = frozenset(
    {1205, 1222, -2, 20, 64, 233, 4060, 4221, 10928, 10929, 40197, 40501, 40613, 49918, 49919, 49920}
)
SQL_DEADLOCK = 1205
# SQL Server's message text of error 1205 is a fixed template (sys.messages); when a .NET service
# passes only an exception's Message on, the template is how the number is still known. It is the
# whole template, not a word of it.
_SQL_1205_TEMPLATE = re.compile(
    r"Transaction \(Process ID \d+\) was deadlocked on .{1,200}? resources with another process and has been "
    r"chosen as the deadlock victim\. Rerun the transaction\.",
    re.DOTALL,
)
# SQL Server tools print "Msg 1205, Level 13, State 51, ..." before the message.
_SQL_MSG_PREFIX = re.compile(r"\bMsg (-?\d{1,6}), Level \d{1,2}, State \d{1,3}")
_NUMBER_KEYS = ("SqlErrorNumber", "ErrorNumber", "Number", "SqlError")
_CODE_KEYS = ("ErrorCode", "Code")
# Explicit codes that name an unknown resource (unverified: no documented list; docs/verification.md).
_RESOURCE_CODES = frozenset({"resourcenotfound", "resourceunknown", "unknownresource"})
_TEXT_KEYS = ("Error", "Description", "Message", "title", "detail")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,9}", value.strip()):
        return int(value.strip())
    return None


def sql_error_number(content: Any) -> int | None:
    """The SQL Server error number a failure carries: an explicit number field (or a numeric
    code), else one its text proves (SQL tools' "Msg N, Level ..." prefix, or error 1205's whole
    template); None when it carries none."""
    if isinstance(content, dict):
        for key in (*_NUMBER_KEYS, *_CODE_KEYS):
            number = _as_int(get_ci(content, key))
            if number is not None:
                return number
        texts = [get_ci(content, key) for key in _TEXT_KEYS]
    else:
        texts = [content]
    for text in texts:
        if not isinstance(text, str):
            continue
        text = text[:4000]
        if match := _SQL_MSG_PREFIX.search(text):
            return int(match.group(1))
        if _SQL_1205_TEMPLATE.search(text):
            return SQL_DEADLOCK
    return None


def explicit_code(content: Any) -> str | None:
    """A non-numeric error code the failure names (ErrorCode / Code), lower-cased."""
    for key in _CODE_KEYS:
        value = get_ci(content, key)
        if isinstance(value, str) and value.strip() and _as_int(value) is None:
            return value.strip().lower()[:100]
    return None


def classify_failure(status: int | None, content: Any) -> ErrorCode:
    """The stable code of a failed Dime.Scheduler call, from what the answer states: a SQL error
    number, an explicit code, then the status (HTTP, or the envelope's inner statusCode; None when
    the call "succeeded" with a failure inside). Unrecognised and 5xx are transient (retried);
    4xx validation is permanent; a failure inside a 200 that states nothing is transient."""
    number = sql_error_number(content)
    if number in TRANSIENT_SQL_ERRORS:
        return ErrorCode.DIME_UNAVAILABLE
    if explicit_code(content) in _RESOURCE_CODES:
        return ErrorCode.DIME_RESOURCE_UNKNOWN
    if status is None or status == 200:
        return ErrorCode.DIME_UNAVAILABLE
    if status == 429:
        return ErrorCode.DIME_THROTTLED
    if status in (401, 403):
        return ErrorCode.DIME_AUTH_FAILED
    if status == 0 or status >= 500 or status in (408, 409, 423) or status < 400:
        return ErrorCode.DIME_UNAVAILABLE
    return ErrorCode.DIME_REJECTED
