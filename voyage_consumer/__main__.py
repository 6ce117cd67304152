"""`python -m voyage_consumer`: the command line of `cli`."""

from __future__ import annotations

from voyage_consumer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
