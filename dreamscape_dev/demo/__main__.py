"""`python -m dreamscape_dev.demo [--flows N] [--seed S] [--timeout SECONDS] [--output DIR]`.

Exit codes: 0 every service caught up, stopped cleanly and every check passed; 1 a service
died, a group did not catch up in time, a service did not exit 0, or a check failed;
2 bad arguments or an output directory the demo will not wipe; 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from common.errors import TransientError
from dreamscape_dev.demo.figures import AnalyticsCliError
from dreamscape_dev.demo.output import OutputDirError
from dreamscape_dev.demo.run import Options, run


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m dreamscape_dev.demo",
        description="Run the three payment consumers end to end on an embedded broker.",
    )
    parser.add_argument("--flows", type=_positive(int), default=2000, help="payment flows (2000)")
    parser.add_argument("--seed", type=int, default=2025, help="simulation seed (2025)")
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=90.0,
        help="seconds for every group to catch up (90)",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("demo-output"), help="output directory, wiped first"
    )
    args = parser.parse_args(argv)
    return Options(flows=args.flows, seed=args.seed, timeout_s=args.timeout, output=args.output)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        return run(options)
    except OutputDirError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except (TransientError, AnalyticsCliError) as exc:  # the broker refused what we published
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted: services stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
