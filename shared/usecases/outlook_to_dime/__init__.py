"""Outlook → Dime.Scheduler use cases: delta, reconcile, series, resync, subscriptions, lifecycle, guarded deletes."""
