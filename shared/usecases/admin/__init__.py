"""The management API's use cases: transactions, bulk actions, resources and the admin console."""
