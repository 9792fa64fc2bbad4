"""Names of the storage queues and tables the app uses.

One place, because the Bicep templates, host.json and the code must agree on them (a test checks
the templates against this module), and because the app provisions itself from these lists: the
first use of a table (or queue) in a process creates every table (or queue) named here, so a new
storage account works without a set-up script. A new queue or table is one more name here.
"""

# Queues (names <= 56 characters, so "<name>-poison" still fits the 63-character limit).
NOTIFICATIONS_QUEUE = "graph-notifications"
LIFECYCLE_QUEUE = "graph-lifecycle"
RESYNC_QUEUE = "mailbox-resync"
PUBLICATIONS_QUEUE = "dime-publications"
BULK_QUEUE = "transactions-bulk"  # retry/archive "all" beyond one page, a page per message
# The delta, reconcile and renewal timers' work, a chunk of mailboxes per message (usecases/fanout.py)
MAILBOX_CHUNKS_QUEUE = "mailbox-chunks"

TRIGGER_QUEUES = (
    NOTIFICATIONS_QUEUE,
    LIFECYCLE_QUEUE,
    RESYNC_QUEUE,
    PUBLICATIONS_QUEUE,
    BULK_QUEUE,
    MAILBOX_CHUNKS_QUEUE,
)
POISON_SUFFIX = "-poison"
POISON_QUEUES = tuple(q + POISON_SUFFIX for q in TRIGGER_QUEUES)
# A poison function that itself fails every delivery moves the message on to "<queue>-poison-poison";
# the retry timer drains these into failed transactions (nothing else reads them).
POISON_POISON_QUEUES = tuple(q + POISON_SUFFIX for q in POISON_QUEUES)
ALL_QUEUES = TRIGGER_QUEUES + POISON_QUEUES + POISON_POISON_QUEUES

# Tables (alphanumeric only: Azure table names allow no hyphens).
RESOURCES_TABLE = "resources"
SUBSCRIPTIONS_TABLE = "subscriptions"
LINKS_TABLE = "links"
TRANSACTIONS_TABLE = "transactions"
SYNCSTATE_TABLE = "syncstate"
EVENT_LINKS_TABLE = "eventlinks"  # Dime.Scheduler → Outlook: per appointment, and per (appointment, mailbox)
HOOKS_TABLE = "dimehooks"  # the Dime.Scheduler webhook ids this app registered
RULES_TABLE = "rules"  # which planner appointments reach Outlook, and how they look there
HISTORY_TABLE = "history"  # succeeded/failed counts per hour and writer (the Overview's charts)

ALL_TABLES = (
    RESOURCES_TABLE,
    SUBSCRIPTIONS_TABLE,
    LINKS_TABLE,
    TRANSACTIONS_TABLE,
    SYNCSTATE_TABLE,
    EVENT_LINKS_TABLE,
    HOOKS_TABLE,
    RULES_TABLE,
    HISTORY_TABLE,
)

# The app setting (or setting prefix) that names the storage account for triggers and our clients.
STORAGE_CONNECTION = "AzureWebJobsStorage"

# Route prefix of the admin HTTP APIs (resources, transactions). Not "admin": the Functions host
# reserves routes starting with "admin" for its own API and refuses (or shadows) such functions
# (azure-functions-host issues #1781 and #7634), so our admin API lives under /api/manage/...
ADMIN_ROUTE_PREFIX = "manage"
