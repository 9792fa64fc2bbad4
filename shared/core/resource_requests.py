"""The resources admin API's input and output, without I/O: parse, validate, render.

Every refusal is an InputError whose message is safe to return to the caller and says what is
allowed, so a 400 always explains itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from shared.core.api_format import iso_utc
from shared.core.consent import Consent
from shared.core.resources import Resource

FIELDS = ("email", "enabled", "showAs", "sensitivities", "locked")
CONSENT_FIELDS = ("enabled", "showAs", "sensitivities")  # what a person may change on their own page
MAX_BODY_BYTES = 16 * 1024
_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InputError(ValueError):
    """A request the API refuses (400); the message is the reason."""


class Conflict(ValueError):
    """A request that names several people, or would make two share an e-mail (409)."""


@dataclass(frozen=True)
class ResourceInput:
    """The fields a PUT or PATCH body may set; None means "not given"."""

    email: str | None = None
    enabled: bool | None = None
    show_as: tuple[str, ...] | str | None = None
    sensitivities: tuple[str, ...] | str | None = None
    locked: tuple[str, ...] | None = None  # administrators only: exactly these consent fields locked

    def consent_fields(self) -> tuple[str, ...]:
        """The consent fields this input sets, by their API names."""
        given = (self.enabled, self.show_as, self.sensitivities)
        return tuple(name for name, value in zip(CONSENT_FIELDS, given, strict=True) if value is not None)


def is_object_id(mailbox: str) -> bool:
    return bool(_OBJECT_ID.match(mailbox))


def parse_mailbox(raw: str | None) -> str:
    """The {mailbox} route parameter: an object id (GUID) or a UPN."""
    value = (raw or "").strip()
    if not value or len(value) > 320 or not (is_object_id(value) or _EMAIL.match(value)):
        raise InputError("mailbox must be a user principal name (name@domain) or an object id (GUID)")
    return value.lower()


def _values(name: str, raw: Any) -> tuple[str, ...] | str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        return tuple(raw)
    raise InputError(f"{name} must be a list of strings (or a comma-separated string)")


def resolve_mailbox(key: str, resources: Iterable[Resource]) -> Resource | None:
    """The tracked mailbox a {mailbox} names: the exact object id, else the exact UPN (both unique),
    else the Dime.Scheduler e-mail, which must name exactly one person (Conflict when several share
    it: acting on the first found could disable or delete the wrong person)."""
    key = key.strip().lower()
    by_email = []
    for resource in resources:
        if key in (resource.object_id.lower(), resource.upn.lower()):
            return resource
        if resource.email.lower() == key:
            by_email.append(resource)
    if len(by_email) > 1:
        ids = ", ".join(sorted(r.object_id for r in by_email))
        raise Conflict(f"{key} is the e-mail of several people ({ids}): name one by object id or UPN")
    return by_email[0] if by_email else None


def email_owner(email: str, object_id: str, resources: Iterable[Resource]) -> Resource | None:
    """Another tracked person whose e-mail or UPN is `email` (an override may not take it)."""
    email = email.strip().lower()
    for resource in resources:
        if resource.object_id.lower() != object_id.lower() and email in (resource.email.lower(), resource.upn.lower()):
            return resource
    return None


def parse_resource_body(body: bytes) -> ResourceInput:
    """A PUT/PATCH body: optional JSON object {"email", "enabled", "showAs", "sensitivities"}."""
    if len(body) > MAX_BODY_BYTES:
        raise InputError("body too large")
    if not body.strip():
        return ResourceInput()
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise InputError(f"body must be a JSON object with any of: {', '.join(FIELDS)}")
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    email = document.get("email")
    if email is not None and (not isinstance(email, str) or not _EMAIL.match(email.strip()) or len(email) > 320):
        raise InputError("email must be an e-mail address (name@domain)")
    enabled = document.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InputError("enabled must be true or false")
    show_as = document.get("showAs")
    sensitivities = document.get("sensitivities")
    locked = document.get("locked")
    if locked is not None and (
        not isinstance(locked, list) or not all(isinstance(v, str) and v in CONSENT_FIELDS for v in locked)
    ):
        raise InputError(f"locked must be a list of consent fields: any of {', '.join(CONSENT_FIELDS)}")
    return ResourceInput(
        email=email.strip() if isinstance(email, str) else None,
        enabled=enabled,
        show_as=_values("showAs", show_as) if show_as is not None else None,
        sensitivities=_values("sensitivities", sensitivities) if sensitivities is not None else None,
        locked=tuple(locked) if locked is not None else None,
    )


def parse_own_body(body: bytes) -> ResourceInput:
    """A person's PATCH of their own settings: only the consent fields. The person is the signed-in
    principal, never a field of the body (an "id", "mailbox" or "email" is refused as unknown)."""
    change = parse_resource_body(body)
    if change.email is not None or change.locked is not None:
        raise InputError(
            f"unknown field {'email' if change.email is not None else 'locked'!r}; allowed: {', '.join(CONSENT_FIELDS)}"
        )
    return change


def admin_locks(resource: Resource, change: ResourceInput) -> frozenset[str]:
    """What an administrator's PUT/PATCH leaves locked: the `locked` list when given (so [] releases
    every field), else what was locked plus every consent field the administrator set."""
    if change.locked is not None:
        return frozenset(change.locked)
    return resource.locked | frozenset(change.consent_fields())


def locked_in(resource: Resource, change: ResourceInput) -> list[str]:
    """The consent fields a person's change sets although an administrator locked them."""
    return [name for name in change.consent_fields() if name in resource.locked]


def apply_input(resource: Resource, change: ResourceInput) -> Resource:
    """The resource with the given fields changed; ConsentError (a 400) for unknown values."""
    consent = resource.consent
    new_consent = Consent.parse(
        consent.enabled if change.enabled is None else change.enabled,
        tuple(consent.show_as) if change.show_as is None else change.show_as,
        tuple(consent.sensitivities) if change.sensitivities is None else change.sensitivities,
    )
    return replace(resource, email=change.email or resource.email, consent=new_consent)


def resource_json(resource: Resource) -> dict[str, Any]:
    show_as, sensitivities = resource.consent.as_csv()
    return {
        "id": resource.object_id,
        "upn": resource.upn,
        "displayName": resource.display_name or None,
        "email": resource.email,
        "enabled": resource.consent.enabled,
        "showAs": [v for v in show_as.split(",") if v],
        "sensitivities": [v for v in sensitivities.split(",") if v],
        "subscription": (
            {"id": resource.subscription_id, "expiresAt": iso_utc(resource.subscription_expiry)}
            if resource.subscription_id
            else None
        ),
        "createdAt": iso_utc(resource.created_at),
        "updatedAt": iso_utc(resource.updated_at),
        "locked": [name for name in CONSENT_FIELDS if name in resource.locked],
    }
