"""The tag on every Outlook event this app writes: a single-value extended property.

Its own module (no imports) because both directions read it: the Outlook → Dime.Scheduler path
must recognise our events even before their link is saved (Graph can notify our create first).
"""

from __future__ import annotations

from typing import Any

# A fixed property set GUID; changing it would make every event we wrote unrecognisable.
TAG_PROPERTY_ID = "String {3c1f6a52-7d0e-4b9a-9f53-2f7d8e1b6a40} Name DimeSchedulerAppointment"


def tag_value(guid: str, resource: str) -> str:
    """The property's value: appointment GUID and resource (number, else e-mail)."""
    return f"{guid}|{resource}"


def tag_of(document: dict[str, Any]) -> str | None:
    """Our tag's value on a Graph event read with $expand of the property, or None."""
    props = document.get("singleValueExtendedProperties")
    if not isinstance(props, list):
        return None
    for prop in props:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower() == TAG_PROPERTY_ID.lower():
            value = prop.get("value")
            return value if isinstance(value, str) and value else None
    return None
