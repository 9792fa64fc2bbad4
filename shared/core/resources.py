"""A tracked person (mailbox): who they are in Graph and in Dime.Scheduler, and their consent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core.consent import Consent


@dataclass(frozen=True)
class Resource:
    object_id: str  # Graph user object id (lowercase): the mailbox's stable identity
    upn: str
    email: str  # the Dime.Scheduler resource is matched by this e-mail
    consent: Consent
    subscription_id: str | None = None
    subscription_expiry: str | None = None  # ISO 8601 UTC
    created_at: str | None = None
    updated_at: str | None = None
    display_name: str = ""  # Graph's displayName, read at onboarding: the console shows it ("" = unknown)
    # Consent fields ("enabled", "showAs", "sensitivities") an administrator set: the person's own
    # page shows them as locked and refuses to change them (resource_requests.locked_in).
    locked: frozenset[str] = frozenset()


def resource_from_user(user: dict[str, Any], consent: Consent) -> Resource:
    """A mailbox being onboarded: e-mail is `mail`, else `userPrincipalName` (read once from Graph)."""
    upn = str(user.get("userPrincipalName") or "")
    mail = user.get("mail") or upn
    name = str(user.get("displayName") or "")
    return Resource(object_id=str(user["id"]).lower(), upn=upn, email=str(mail), consent=consent, display_name=name)
