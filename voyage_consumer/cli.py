"""The command line of `voyage-consumer` (and `python -m voyage_consumer`).

    voyage-consumer                      run the service (same as `voyage-consumer run`)
    voyage-consumer status BOOKING_ID    print a booking, its facts and how it was derived
    voyage-consumer migrate [--sql]      apply (or print) the database migrations

Configuration comes from the environment only (see docs/voyage.md and the README).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common.schema import add_migrate_command, run_migrate_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voyage-consumer",
        description="Booking status from DreamScape payment events (configured by environment).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="consume payment events until SIGTERM (the default)")
    status = commands.add_parser(
        "status", help="print a booking, its facts and how its status was derived"
    )
    status.add_argument("booking_id")
    add_migrate_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "migrate":
        from voyage_consumer.tables import SCHEMA

        return run_migrate_command(SCHEMA, sql=args.sql)
    if args.command == "status":
        from voyage_consumer.status import status

        return status(args.booking_id)
    from common.service import run_service
    from voyage_consumer.service import SERVICE, build
    from voyage_consumer.settings import VoyageSettings

    return run_service(VoyageSettings, build, service=SERVICE)
