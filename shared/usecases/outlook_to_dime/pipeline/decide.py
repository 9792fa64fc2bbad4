"""Step 2 of the pipeline: the triage's verdict for every change whose reads are complete (pure:
`shared.core.outlook_to_dime.triage.verdict`, which ends in `shared.core.decision.decide`)."""

from __future__ import annotations

from datetime import datetime

from shared.core.outlook_to_dime.triage import Policy, Step, verdict
from shared.services import Services
from shared.usecases.outlook_to_dime.pipeline.item import Item


def policy_of(services: Services) -> Policy:
    settings = services.settings
    return Policy(
        tenant_id=settings.graph_tenant_id,
        private_details=settings.sync_private_details,
        zone=settings.dime_zone,
        days_back=settings.sync_days_back,
        days_forward=settings.sync_days_forward,
    )


def decide_all(services: Services, items: list[Item], now: datetime) -> None:
    policy = policy_of(services)
    for item in items:
        if item.outcome is not None or item.verdict is not None:
            continue
        assert item.resource is not None
        item.verdict = verdict(item.change, item.known, item.resource, policy, now)
        if item.verdict.step is Step.FAIL:
            assert item.verdict.error is not None
            item.fail(item.verdict.error)
