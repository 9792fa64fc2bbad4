"""The Dime.Scheduler → Outlook direction's pure core: publications, Outlook events, the decision."""
