"""What an HTTP use case answers: status, body, content type and extra headers.

Use cases return this plain value and `function_app.py` turns it into a `func.HttpResponse`, so
the use cases never import the Functions runtime and are tested without it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers (the console's security headers)
