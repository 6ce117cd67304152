"""Test fixtures for consumers built on common (a pytest plugin)."""
