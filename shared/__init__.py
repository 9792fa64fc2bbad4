"""The connector's own package: pure core, use cases and adapters (imports point down only)."""
