"""Operator commands: import contacts, then send what was undeliverable without them.

    notification-consumer contacts import FILE     CSV with a header, or JSON lines:
                                                   user_id, email[, display_name, locale]
    notification-consumer resend --status undeliverable [--since 2026-12-01T00:00:00Z]

A receipt for a user with no `user_contact` row (and no `RECIPIENT_EMAIL_TEMPLATE`) is
recorded `undeliverable`, its event kept in `undelivered_event`. Once the contact exists,
`resend` sends each such notification once, with the Message-ID it was given the first
time, and records the new outcome. Both read the service's own environment.
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
from common.schema import open_database
from notification_consumer import repository
from notification_consumer.handler import NotificationHandler
from notification_consumer.models import SCHEMA, UserContact
from notification_consumer.notifications import valid_address
from notification_consumer.service import build
from notification_consumer.settings import NotificationSettings

FIELDS = ("user_id", "email", "display_name", "locale")


def add_arguments(commands: Any) -> None:
    contacts = commands.add_parser("contacts", help="manage user contacts")
    actions = contacts.add_subparsers(dest="action", required=True)
    imported = actions.add_parser("import", help="add or replace contacts from a file")
    imported.add_argument("file", type=Path, help="CSV with a header, or JSON lines")
    resend = commands.add_parser("resend", help="send notifications that could not be sent")
    resend.add_argument("--status", choices=("undeliverable",), required=True)
    resend.add_argument("--since", type=datetime.fromisoformat, help="ISO 8601, with a zone")


def run(args: argparse.Namespace, settings: NotificationSettings) -> int:
    if args.command == "contacts":
        return import_contacts(args.file, settings)
    return resend(args.status, args.since, settings)


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
            repository.save_contact(session=session, contact=contact)
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
        kept = repository.undelivered(session=session, status=status, since=since)
    engine.dispose()
    batch = [
        Inbound(Record("resend", 0, n, None, text.encode()), parse_event(text.encode()))
        for n, (_kind, text) in enumerate(kept)
    ]
    results = handler.resend(batch) if batch else {}
    described = ", ".join(f"{n} {outcome}" for outcome, n in sorted(results.items()))
    print(f"{len(batch)} {status} notification(s): {described or 'nothing to do'}")
    return 0
