"""Which assigned resources get the appointment in their Outlook calendar, and why not.

The directory chooses the mailbox, never the payload. Whoever holds the publications key can post
anything, so the target of an assignment is the e-mail Dime.Scheduler's own resource record
(`GET /resource`) holds for that resource number, with Exchange integration enabled there (as
the official connector). An e-mail inside the payload is at most a hint: when it disagrees with
the record, the assignment is refused (`email-mismatch`); an assignment carrying only an e-mail
is matched to the directory entry holding that e-mail, and the target is still that entry's.
Never guessed: a resource `GET /resource` does not list is not eligible (reported, not written).

Then the mailbox: by default (`DIME_OUTLOOK_TARGETS=onboarded`) only people onboarded in this app
are targets, found in the resources table (no Graph lookup at all); `directory` widens it to any
mailbox of the tenant whose address is the directory's e-mail (a Graph user lookup, only ever for
an e-mail the directory holds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.core.dime_to_outlook.publication import Assignment, Publication
from shared.core.resources import Resource

ONBOARDED = "onboarded"
DIRECTORY = "directory"
TARGET_MODES = (ONBOARDED, DIRECTORY)
MAX_ASSIGNMENTS = 100  # per appointment: beyond, the publication is a failed transaction

# Why an assigned resource gets no Outlook event (the unmatched report shows these).
RESOURCE_UNKNOWN = "resource-unknown"  # GET /resource does not list it
NO_EMAIL = "no-email"  # its resource record has no e-mail
EMAIL_MISMATCH = "email-mismatch"  # the payload names another e-mail than the record
INTEGRATION_DISABLED = "integration-disabled"  # Exchange integration is off in Dime.Scheduler
NOT_ONBOARDED = "not-onboarded"  # (onboarded) nobody onboarded here has the record's e-mail
NO_MAILBOX = "no-mailbox"  # (directory) no mailbox of the tenant has the record's e-mail


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
            _address(email),
            enabled is True or (isinstance(enabled, str) and enabled.lower() == "true"),
        )
    return found


def _address(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def directory_entry(assignment: Assignment, directory: dict[str, DimeResource]) -> DimeResource | None:
    """The directory's record of an assigned resource: by number; by e-mail only when the
    assignment carries no number (a number the directory does not know is never matched by the
    e-mail next to it). Of several records with that e-mail, one with Exchange integration on."""
    if assignment.resource_no is not None:
        return directory.get(assignment.resource_no)
    email = _address(assignment.email)
    if email is None:
        return None
    holders = [r for r in directory.values() if r.email == email]
    return next((r for r in holders if r.exchange_enabled), holders[0] if holders else None)


def target_email(assignment: Assignment, entry: DimeResource | None) -> tuple[str | None, str | None]:
    """(the directory's e-mail to place the event for, None), or (None, why not)."""
    if entry is None:
        return None, RESOURCE_UNKNOWN
    if entry.email is None:
        return None, NO_EMAIL
    hint = _address(assignment.email)
    if hint is not None and hint != entry.email:
        return None, EMAIL_MISMATCH
    if not entry.exchange_enabled:
        return None, INTEGRATION_DISABLED
    return entry.email, None


def refusal(
    assignment: Assignment, entry: DimeResource | None, mailbox_id: str | None, mode: str = ONBOARDED
) -> str | None:
    """Why this assigned resource gets no Outlook event, or None when it does."""
    _, why = target_email(assignment, entry)
    if why is not None:
        return why
    if mailbox_id is None:
        return NOT_ONBOARDED if mode == ONBOARDED else NO_MAILBOX
    return None


def onboarded_mailboxes(resources: Iterable[Resource]) -> dict[str, str]:
    """The people onboarded here: their Dime.Scheduler e-mail and their UPN (lowercase) → mailbox
    object id. An e-mail beats another person's identical UPN (e-mails are unique per person)."""
    index: dict[str, str] = {}
    people = list(resources)
    for person in people:
        if person.upn:
            index[person.upn.strip().lower()] = person.object_id
    for person in people:
        if person.email:
            index[person.email.strip().lower()] = person.object_id
    return index


def assignments_refusal(pub: Publication) -> str | None:
    """Bounded work: an appointment naming more resources than any planner assigns is refused whole
    (a failed transaction), before any lookup or write."""
    if len(pub.assignments) > MAX_ASSIGNMENTS:
        return f"{len(pub.assignments)} assigned resources; at most {MAX_ASSIGNMENTS} per appointment are placed"
    return None
