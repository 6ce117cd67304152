"""The command line of `notification-consumer` (and `python -m notification_consumer`).

    notification-consumer [run]                                   run the service
    notification-consumer preview EVENT.json [--locale fr] --out DIR   render one email
    notification-consumer contacts import FILE                    add contacts (CSV or JSON lines)
    notification-consumer resend --status undeliverable [--since T]    send what had no address
    notification-consumer migrate [--sql]                         apply (or print) the database migrations

`contacts import` reads a CSV with a header, or JSON lines: user_id, email[, display_name,
locale]. A receipt for a user with no `user_contact` row (and no `RECIPIENT_EMAIL_TEMPLATE`)
is recorded `undeliverable`, its event kept in `undelivered_event`. Once the contact exists,
`resend --status undeliverable [--since 2026-12-01T00:00:00Z]` sends each such notification
once, with the Message-ID it was given the first time, and records the new outcome. Both
read the service's own environment. `preview` (for template authors) lives in `preview`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from common.db import transaction
from common.parsing import parse_event
from common.records import Inbound, Record
from common.schema import add_migrate_command, open_database, run_migrate_command
from common.service import run_service
from common.settings import ConfigurationError, load_settings
from notification_consumer import preview, store
from notification_consumer.domain import valid_address
from notification_consumer.handler import NotificationHandler
from notification_consumer.service import SERVICE, build
from notification_consumer.settings import NotificationSettings
from notification_consumer.tables import SCHEMA, UserContact

FIELDS = ("user_id", "email", "display_name", "locale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=SERVICE, description="Payment receipts, failure notices and refund confirmations."
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="consume payment events and send emails (the default)")
    preview.add_arguments(
        commands.add_parser("preview", help="render the email of one event into files")
    )
    _add_operator_commands(commands)
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
        if args.command == "contacts":
            return import_contacts(args.file, settings)
        return resend(args.status, args.since, settings)
    return run_service(NotificationSettings, build, service=SERVICE)


def _add_operator_commands(commands: Any) -> None:
    contacts = commands.add_parser("contacts", help="manage user contacts")
    actions = contacts.add_subparsers(dest="action", required=True)
    imported = actions.add_parser("import", help="add or replace contacts from a file")
    imported.add_argument("file", type=Path, help="CSV with a header, or JSON lines")
    resend = commands.add_parser("resend", help="send notifications that could not be sent")
    resend.add_argument("--status", choices=("undeliverable",), required=True)
    resend.add_argument("--since", type=datetime.fromisoformat, help="ISO 8601, with a zone")


def import_contacts(path: Path, settings: NotificationSettings) -> int:
    """Upsert every valid row; name each bad one on stderr; exit 1 if there was any."""
    engine = open_database(SCHEMA, settings)
    imported, bad = 0, 0
    with transaction(engine) as session:
        for line, row in _rows(path):
            email = (row.get("email") or "").strip()
            user_id = (row.get("user_id") or "").strip()
            if not user_id or not valid_address(email):
                print(
                    f"{path}: line {line}: no user_id or not an address; skipped", file=sys.stderr
                )
                bad += 1
                continue
            contact = UserContact(
                user_id=user_id,
                email=email,
                display_name=row.get("display_name") or None,
                locale=row.get("locale") or None,
            )
            store.save_contact(session=session, contact=contact)
            imported += 1
    engine.dispose()
    print(f"{imported} contact(s) imported, {bad} skipped")
    return 1 if bad else 0


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, fields) of a CSV file with a header, or of a JSON-lines file."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield number, {k: str(v) for k, v in json.loads(line).items() if v is not None}
        return
    for number, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        yield number, {k: v for k, v in row.items() if k in FIELDS and v is not None}


def resend(status: str, since: datetime | None, settings: NotificationSettings) -> int:
    """Send the `status` notifications that now have an address; print what happened."""
    spec = build(settings, CollectorRegistry())
    handler = spec.handle
    assert isinstance(handler, NotificationHandler)
    engine = open_database(SCHEMA, settings)
    with transaction(engine) as session:
        kept = store.undelivered(session=session, status=status, since=since)
    engine.dispose()
    batch = [
        Inbound(Record("resend", 0, n, None, text.encode()), parse_event(text.encode()))
        for n, (_kind, text) in enumerate(kept)
    ]
    try:
        results = handler.resend(batch) if batch else {}
    finally:
        for close in spec.closers:  # QUIT the SMTP sessions, release the presence lock
            close()
    described = ", ".join(f"{n} {outcome}" for outcome, n in sorted(results.items()))
    print(f"{len(batch)} {status} notification(s): {described or 'nothing to do'}")
    return 0
