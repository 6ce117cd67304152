"""Entry point of `notification-consumer` (and `python -m notification_consumer`).

notification-consumer [run]                                  run the service
notification-consumer preview EVENT.json [--locale fr] --out DIR   render one email
"""

from __future__ import annotations

import argparse

from common.service import run_service
from notification_consumer import preview
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
    args = parser.parse_args(argv)
    if args.command == "preview":
        return preview.preview(args)
    return run_service(NotificationSettings, build, service=SERVICE)


if __name__ == "__main__":
    raise SystemExit(main())
