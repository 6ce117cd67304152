"""`analytics-consumer audit export | prune`: the audit trail for auditors and its retention.

    analytics-consumer audit export --from YYYY-MM-DD --to YYYY-MM-DD [--out FILE]
    analytics-consumer audit prune [--older-than-years 7] [--dry-run]

`export` writes the accepted events whose occurrence falls on those UTC days (both included)
as JSON lines (format: docs/analytics.md, "Audit trail") to FILE, written whole or not at
all, or to standard output. `prune` is the retention job (docs/operations.md): it removes
whole months older than the retention and says which.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import Engine

from analytics_consumer.audit import export_line
from analytics_consumer.audit_trail import MIN_RETENTION_YEARS, export, prune
from analytics_consumer.days import parse_day

RETENTION_YEARS: Final = 7
"""The spec's retention of financial data."""


def _day(text: str) -> str:
    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _years(text: str) -> int:
    try:
        years = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of years, got {text!r}"
        ) from None
    if years < MIN_RETENTION_YEARS:
        raise argparse.ArgumentTypeError(
            f"the retention must be at least {MIN_RETENTION_YEARS} year"
        )
    return years


def add_audit_command(commands: Any) -> None:
    """Add `audit export | prune` to the service's sub-commands (an argparse subparsers object)."""
    audit = commands.add_parser("audit", help="export the audit trail, or prune it")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    out = actions.add_parser("export", help="write a range of days as JSON lines")
    out.add_argument("--from", dest="first", type=_day, required=True, help="first UTC day")
    out.add_argument("--to", dest="last", type=_day, required=True, help="last UTC day (included)")
    out.add_argument("--out", type=Path, help="the file to write (default: standard output)")
    cut = actions.add_parser("prune", help="remove whole months older than the retention")
    cut.add_argument(
        "--older-than-years", dest="years", type=_years, default=RETENTION_YEARS,
        help=f"the retention in years (default {RETENTION_YEARS})",
    )  # fmt: skip
    cut.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")


def run_audit_command(engine: Engine, args: argparse.Namespace, *, prog: str) -> int:
    """Run `audit export` or `audit prune`: 0 when done, 2 for a range that ends before it starts."""
    if args.audit_command == "prune":
        return _prune(engine, years=args.years, dry_run=args.dry_run)
    if args.last < args.first:
        print(f"{prog}: --to {args.last} is before --from {args.first}", file=sys.stderr)
        return 2
    if args.out is None:
        written = _write(engine, args.first, args.last, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        partial = args.out.with_name(args.out.name + ".partial")
        with partial.open("wb") as file:
            written = _write(engine, args.first, args.last, file)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(args.out)
    target = "standard output" if args.out is None else str(args.out)
    print(f"exported {written} events of {args.first}..{args.last} to {target}", file=sys.stderr)
    return 0


def _write(engine: Engine, first: str, last: str, file: IO[bytes]) -> int:
    written = 0
    for row in export(engine, first, last):
        file.write(export_line(row) + b"\n")
        written += 1
    return written


def _prune(engine: Engine, *, years: int, dry_run: bool) -> int:
    pruned = prune(engine, years=years, now=datetime.now(UTC), dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    for month in pruned:
        print(f"{verb} {month.month} ({month.events} event{'' if month.events == 1 else 's'})")
    if not pruned:
        print(f"nothing older than {years} years to drop")
    return 0
