"""Entry point of `voyage-consumer` (placeholder: the service lands with its own issue)."""

from __future__ import annotations

import sys


def main() -> int:
    print("voyage-consumer is not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
