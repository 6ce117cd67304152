"""The analytics consumer service (placeholder until its own issue lands)."""
