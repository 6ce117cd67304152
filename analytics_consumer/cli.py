"""`analytics-consumer [run | report | dashboard | reconcile | audit]`: the service and its tools.

`run` (also with no arguments) consumes payment events. The other commands only read the
database named by `DATABASE_URL` (same default as the service) and need no Kafka:

    analytics-consumer report [--json] [--day YYYY-MM-DD]
    analytics-consumer dashboard --out FILE.html [--day YYYY-MM-DD]
    analytics-consumer reconcile --gateway-report FILE.csv [--day YYYY-MM-DD|yesterday]
                                 [--margin-minutes N] [--record] [--json]
    analytics-consumer audit export --from YYYY-MM-DD --to YYYY-MM-DD [--out FILE.jsonl]
    analytics-consumer audit prune [--older-than-years 7] [--dry-run]
    analytics-consumer migrate [--sql]

`audit export` writes the accepted events whose occurrence falls on those UTC days (both
included) as JSON lines (format: docs/analytics.md, "Audit trail") to FILE, written whole or
not at all, or to standard output. `audit prune` is the retention job (docs/operations.md):
it removes whole months older than the retention and says which.

Exit codes: 0 success; 1 reconciliation found discrepancies, or the database failed;
2 invalid arguments, configuration or gateway report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from analytics_consumer import dashboard, reconcile, reconciliation_runs
from analytics_consumer.alerts import AlertInputs, AlertRules, evaluate
from analytics_consumer.audit import export_line
from analytics_consumer.audit_trail import MIN_RETENTION_YEARS, export, prune
from analytics_consumer.days import parse_day
from analytics_consumer.reading import read_figures, snapshot
from analytics_consumer.report import report_json, report_text
from analytics_consumer.service import SERVICE, build
from analytics_consumer.settings import AnalyticsSettings
from analytics_consumer.tables import SCHEMA
from common.schema import add_migrate_command, open_database, run_migrate_command
from common.service import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, run_service
from common.settings import ConfigurationError, load_settings

PROG = "analytics-consumer"

RETENTION_YEARS: Final = 7
"""The spec's retention of financial data (`audit prune`'s default)."""


def _day(text: str) -> str:
    """`YYYY-MM-DD`, or `today` / `yesterday` (UTC), for a scheduler that cannot compute dates."""
    relative = {"today": 0, "yesterday": 1}.get(text)
    if relative is not None:
        return (datetime.now(UTC).date() - timedelta(days=relative)).isoformat()
    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="DreamScape payment analytics.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="consume payment events (the default)")
    report = commands.add_parser("report", help="print the figures and alerts")
    report.add_argument("--json", action="store_true", help="one JSON object")
    report.add_argument("--day", type=_day, help="one UTC day (YYYY-MM-DD) instead of all time")
    page = commands.add_parser("dashboard", help="write a self-contained HTML dashboard")
    page.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    page.add_argument("--day", type=_day, help="one UTC day instead of all time")
    check = commands.add_parser("reconcile", help="compare with a payment gateway report")
    check.add_argument(
        "--gateway-report", required=True, help="CSV (docs/analytics.md); `{day}` is replaced"
    )
    check.add_argument("--day", type=_day, help="only this UTC day (YYYY-MM-DD, yesterday)")
    check.add_argument(
        "--margin-minutes",
        type=int,
        default=60,
        help="with --day: also read this far into the days around it (default 60)",
    )
    check.add_argument(
        "--record", action="store_true", help="store the outcome for the service's /metrics"
    )
    check.add_argument("--json", action="store_true", help="one JSON object")
    _add_audit_command(commands)
    add_migrate_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "run"):
        return run_service(AnalyticsSettings, build, service=SERVICE)
    if args.command == "migrate":
        return run_migrate_command(SCHEMA, sql=args.sql)
    try:
        settings = load_settings(AnalyticsSettings)
    except ConfigurationError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.command == "audit":
            return _audit(open_database(SCHEMA, settings), args)
        if args.command == "reconcile":
            return _reconcile(settings, args)
        return _report(settings, args)
    except DBAPIError as exc:
        print(f"{PROG}: database error: {exc.orig}", file=sys.stderr)
        return EXIT_FAILURE


def _report(settings: AnalyticsSettings, args: argparse.Namespace) -> int:
    engine = open_database(SCHEMA, settings)
    rules = AlertRules.from_settings(settings)
    with snapshot(engine) as session:
        figures = read_figures(session=session, day=args.day, rules=rules)
    alerts = evaluate(AlertInputs.of(figures), rules)
    if args.command == "dashboard":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page = dashboard.render(
            figures,
            alerts,
            failure_limit=float(rules.failure_rate_percent),
            refund_limit=float(rules.refund_rate_percent),
            delay_s=rules.processing_delay_ms // 1000,
        )
        args.out.write_text(page, encoding="utf-8")
        print(f"dashboard written to {args.out}")
    elif args.json:
        print(json.dumps(report_json(figures, alerts), indent=2))
    else:
        print(report_text(figures, alerts), end="")
    return EXIT_OK


def _reconcile(settings: AnalyticsSettings, args: argparse.Namespace) -> int:
    """Compare, print, and with --record store the outcome (a failed read too); exit 0, 1 or 2."""
    started_ms = _now_ms()
    day: str | None = args.day
    name = args.gateway_report.replace("{day}", day or "all")
    try:
        gateway = reconcile.read_gateway_report(Path(name))
    except (OSError, reconcile.GatewayReportError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        if args.record:
            failed = reconciliation_runs.failed_run(
                str(exc), day=day, report=name, started_ms=started_ms, finished_ms=_now_ms()
            )
            reconciliation_runs.record(open_database(SCHEMA, settings), failed)
        return EXIT_CONFIG
    margin_ms = max(0, args.margin_minutes) * 60_000
    engine = open_database(SCHEMA, settings)
    with snapshot(engine) as session:
        recorded = reconcile.recorded_movements(
            session=session, day=day, match_by=gateway.match_by, margin_ms=margin_ms
        )
    result = reconcile.compare(
        recorded,
        gateway.movements,
        day=day,
        match_by=gateway.match_by,
        ignored=gateway.ignored,
        margin_ms=margin_ms,
    )
    if args.record:
        run = reconciliation_runs.completed_run(
            result, report=name, started_ms=started_ms, finished_ms=_now_ms()
        )
        reconciliation_runs.record(engine, run)
    print(
        json.dumps(result.as_json(), indent=2) if args.json else result.as_text(),
        end="\n" if args.json else "",
    )
    return EXIT_FAILURE if result.discrepancies else EXIT_OK


def _now_ms() -> int:
    return int(time.time() * 1000)


def _calendar_day(text: str) -> str:
    """`YYYY-MM-DD` only: an audit range names its days."""
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


def _add_audit_command(commands: Any) -> None:
    """Add `audit export | prune` to the service's sub-commands (an argparse subparsers object)."""
    audit = commands.add_parser("audit", help="export the audit trail, or prune it")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    out = actions.add_parser("export", help="write a range of days as JSON lines")
    out.add_argument(
        "--from", dest="first", type=_calendar_day, required=True, help="first UTC day"
    )
    out.add_argument(
        "--to", dest="last", type=_calendar_day, required=True, help="last UTC day (included)"
    )
    out.add_argument("--out", type=Path, help="the file to write (default: standard output)")
    cut = actions.add_parser("prune", help="remove whole months older than the retention")
    cut.add_argument(
        "--older-than-years", dest="years", type=_years, default=RETENTION_YEARS,
        help=f"the retention in years (default {RETENTION_YEARS})",
    )  # fmt: skip
    cut.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")


def _audit(engine: Engine, args: argparse.Namespace) -> int:
    """Run `audit export` or `audit prune`: 0 when done, 2 for a range that ends before it starts."""
    if args.audit_command == "prune":
        return _prune(engine, years=args.years, dry_run=args.dry_run)
    if args.last < args.first:
        print(f"{PROG}: --to {args.last} is before --from {args.first}", file=sys.stderr)
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
