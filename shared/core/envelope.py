"""Reading Dime.Scheduler's answers: keys case-insensitively, failures inside a 200 recognised.

The vendor's .NET SDK reads the envelope's keys case-insensitively (dimescheduler.md
"Responses"), so ``statusCode``, ``StatusCode`` and ``statuscode`` are the same key here too.
"""

from __future__ import annotations

from typing import Any


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
