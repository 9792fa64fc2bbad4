"""Kept only for the Dime.Scheduler → Outlook direction, which asks the same primary-calendar proof
(`place_appointment` imports it from here). Outlook changes no longer go through a per-event path:
every change goes through the batch pipeline (`shared.usecases.outlook_to_dime.pipeline`)."""

from shared.usecases.outlook_to_dime.pipeline.read import in_primary_calendar

__all__ = ["in_primary_calendar"]
