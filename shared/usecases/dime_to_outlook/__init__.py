"""Dime.Scheduler → Outlook use cases: inbound publications, placing appointments, reconcile, hooks, unmatched."""
