"""Entry point of `notification-consumer` (and `python -m notification_consumer`).

notification-consumer [run]                                  run the service
notification-consumer preview EVENT.json [--locale fr] --out DIR   render one email
notification-consumer contacts import FILE                   add contacts (CSV or JSON lines)
notification-consumer resend --status undeliverable [--since T]   send what had no address
notification-consumer migrate [--sql]                        apply (or print) the database migrations
"""

from __future__ import annotations

import argparse
import sys

from common.schema import add_migrate_command, run_migrate_command
from common.service import run_service
from common.settings import ConfigurationError, load_settings
from notification_consumer import commands as commands_module
from notification_consumer import preview
from notification_consumer.models import SCHEMA
from notification_consumer.service import SERVICE, build
from notification_consumer.settings import NotificationSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=SERVICE, description="Payment receipts, failure notices and refund confirmations."
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="consume payment events and send emails (the default)")
    preview.add_arguments(
        commands.add_parser("preview", help="render the email of one event into files")
    )
    commands_module.add_arguments(commands)
    add_migrate_command(commands)
    args = parser.parse_args(argv)
    if args.command == "migrate":
        return run_migrate_command(SCHEMA, sql=args.sql)
    if args.command == "preview":
        return preview.preview(args)
    if args.command in ("contacts", "resend"):
        try:
            settings = load_settings(NotificationSettings)
        except ConfigurationError as exc:
            print(f"{SERVICE}: {exc}", file=sys.stderr)
            return 2
        return commands_module.run(args, settings)
    return run_service(NotificationSettings, build, service=SERVICE)


if __name__ == "__main__":
    raise SystemExit(main())
