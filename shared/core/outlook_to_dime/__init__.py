"""The Outlook → Dime.Scheduler direction's pure core: notifications, delta, subscriptions, appointment calls."""
