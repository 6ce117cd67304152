"""Entry point of `analytics-consumer` and `python -m analytics_consumer` (see `cli`)."""

from __future__ import annotations

from analytics_consumer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
