"""Identity: deterministic appointment GUIDs and table-safe keys.

Deterministic ids are what make every retry an idempotent upsert: the same Outlook event always
maps to the same Dime.Scheduler appointment, however often we process it.
"""

from __future__ import annotations

import base64
import uuid

# Fixed namespace for uuid5; changing it would re-key every appointment ever written.
APPOINTMENT_NAMESPACE = uuid.UUID("6f1c2a0e-8e43-4d39-9d7e-5b0f3c2a9e71")


def appointment_guid(tenant_id: str, mailbox_id: str, event_id: str) -> str:
    """The appointment GUID of an Outlook-originated event (immutable id => stable GUID)."""
    return str(uuid.uuid5(APPOINTMENT_NAMESPACE, f"{tenant_id.lower()}/{mailbox_id.lower()}/{event_id}"))


def encode_key(value: str) -> str:
    """Make any id usable as a PartitionKey/RowKey (which forbid / \\ # ? and control characters)."""
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")


def decode_key(key: str) -> str:
    return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode("utf-8")
