"""Worked examples of consumers built on `common`, kept here so the test suite runs them."""
