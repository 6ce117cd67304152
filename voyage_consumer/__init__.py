"""The voyage consumer service (placeholder until its own issue lands)."""
