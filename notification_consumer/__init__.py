"""The notification consumer service (placeholder until its own issue lands)."""
