"""Azure Storage: the app's tables and queues (clients, self-provisioning, the stores of each table)."""
