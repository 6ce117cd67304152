"""How the demo tests start `make demo`'s program: one command line for all of them."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo_command(*, flows: int, seed: int, timeout_s: int, output: Path) -> list[str]:
    """`python -m dreamscape_dev.demo` over `flows` flows, writing to `output`."""
    return [
        *(sys.executable, "-m", "dreamscape_dev.demo"),
        *("--flows", str(flows), "--seed", str(seed), "--timeout", str(timeout_s)),
        *("--output", str(output)),
    ]
