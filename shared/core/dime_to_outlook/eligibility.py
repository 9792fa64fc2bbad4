"""Which assigned resources get the appointment in their Outlook calendar, and why not.

As the official connector: a resource with an e-mail, Exchange integration enabled in
Dime.Scheduler (`GET /resource`), and a mailbox Graph knows. Never guessed: a resource
`GET /resource` does not list is not eligible (and is reported, not written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core.dime_to_outlook.publication import Assignment


@dataclass(frozen=True)
class DimeResource:
    resource_no: str
    email: str | None
    exchange_enabled: bool


def resources_from_listing(document: Any) -> dict[str, DimeResource]:
    """`GET /resource` (an array, or an envelope with one) → resource number → resource."""
    items = document
    if isinstance(document, dict):
        lowered = {str(k).lower(): v for k, v in document.items()}
        lists = [lowered[k] for k in ("value", "resources", "items", "data") if isinstance(lowered.get(k), list)]
        items = lists[0] if lists else []
    found: dict[str, DimeResource] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        doc = {str(k).lower(): v for k, v in item.items()}
        number = doc.get("resourceno")
        if not isinstance(number, str | int) or isinstance(number, bool) or str(number) == "":
            continue
        email = doc.get("email")
        enabled = doc.get("exchangeintegrationenabled")
        found[str(number)] = DimeResource(
            str(number),
            email.strip().lower() if isinstance(email, str) and email.strip() else None,
            enabled is True or (isinstance(enabled, str) and enabled.lower() == "true"),
        )
    return found


def directory_entry(assignment: Assignment, directory: dict[str, DimeResource]) -> DimeResource | None:
    if assignment.resource_no is not None:
        return directory.get(assignment.resource_no)
    if assignment.email:
        return next((r for r in directory.values() if r.email == assignment.email), None)
    return None


def email_of(assignment: Assignment, entry: DimeResource | None) -> str | None:
    return assignment.email or (entry.email if entry else None)


def refusal(assignment: Assignment, entry: DimeResource | None, mailbox_id: str | None) -> str | None:
    """Why this assigned resource gets no Outlook event, or None when it does."""
    if entry is None:
        return "resource-unknown"
    if not email_of(assignment, entry):
        return "no-email"
    if not entry.exchange_enabled:
        return "integration-disabled"
    if mailbox_id is None:
        return "no-mailbox"
    return None
