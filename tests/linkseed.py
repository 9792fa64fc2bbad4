"""Many linked events, fast: fake Graph events plus link rows written straight to the table.

The link rows hold exactly what the pipeline would have stored (the changeKey, and the content hash
computed through shared.core.outlook_to_dime.appointments), so a reconcile over them finds nothing to write.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.storage.tables import _link_entity
from shared.core.events import event_from_graph
from shared.core.ids import appointment_guid
from shared.core.links import Link
from shared.core.outlook_to_dime.appointments import appointment_for
from shared.core.resources import Resource, resource_from_user
from shared.names import LINKS_TABLE
from shared.services import Services

TABLE_BATCH = 100  # operations per table transaction


def add_mailbox(graph: Any, services: Services, **user: Any) -> dict[str, Any]:
    person = graph.add_user(**user)
    services.store.add_resource(resource_from_user(person, services.settings.default_consent))
    return person


def link_for(services: Services, resource: Resource, event_json: dict[str, Any]) -> Link:
    event = event_from_graph(event_json)
    guid = appointment_guid(services.settings.graph_tenant_id, resource.object_id, event.id)
    settings = services.settings
    appointment = appointment_for(
        event, guid, resource.email, private_details=settings.sync_private_details, zone=settings.dime_zone
    )
    return Link(
        mailbox_id=resource.object_id,
        event_id=event.id,
        appointment_guid=guid,
        origin="outlook",
        change_key=event.change_key,
        content_hash=appointment.content_hash(),
        resource_email=resource.email,
        synced_at=datetime.now(UTC).isoformat(),
        series_master_id=event.series_master_id,
        kept_values=appointment.kept_values(),
    )


def seed_linked_events(graph: Any, services: Services, person: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """`count` events in the fake, each already linked as if synchronised."""
    resource = services.store.get_resource(person["id"])
    assert resource is not None
    base = datetime(2026, 11, 23, 8, tzinfo=UTC)
    events = []
    for n in range(count):
        start = base + timedelta(minutes=30 * (n % 400), days=n // 400)
        events.append(
            graph.create_event(
                person["id"],
                subject=f"Job {n}",
                start=start.replace(tzinfo=None).isoformat(),
                end=(start + timedelta(minutes=30)).replace(tzinfo=None).isoformat(),
            )
        )
    table = services.store.table(LINKS_TABLE)
    entities = [_link_entity(link_for(services, resource, event)) for event in events]
    for start in range(0, len(entities), TABLE_BATCH):
        table.submit_transaction([("create", entity) for entity in entities[start : start + TABLE_BATCH]])
    return events
