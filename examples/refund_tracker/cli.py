"""The command line: `python -m examples.refund_tracker [run]` runs it until SIGTERM or SIGINT."""

import argparse
from collections.abc import Sequence

from common.service import run_service
from examples.refund_tracker.service import NAME, build
from examples.refund_tracker.settings import RefundTrackerSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=NAME, description="Refunded totals per currency.")
    parser.add_subparsers(dest="command").add_parser("run", help="consume (the default)")
    parser.parse_args(argv)
    return run_service(RefundTrackerSettings, build, service=NAME)
