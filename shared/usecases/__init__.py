"""Use cases: one per trigger, composing the pure core with the adapters."""
