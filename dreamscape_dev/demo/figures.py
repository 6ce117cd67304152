"""What the services ended with, read where each keeps it, once they have stopped.

Each figure comes from the service's own record of what it did: voyage's `booking` table,
the emails that crossed SMTP (and notification's ledger beside them), analytics' report as
its CLI prints it, and the three dead-letter topics. Reading after the services stopped
means nothing moves underneath.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from common import dlq
from common.db import make_engine
from common.kafka import read_all
from common.topics import DEFAULT_TOPICS, Topics
from dreamscape_dev.demo.orchestra import base_env
from notification_consumer.tables import SentNotification
from voyage_consumer.tables import Booking

ANALYTICS_CLI_TIMEOUT_S = 60.0


def booking_statuses(database_url: str) -> dict[str, str]:
    """booking_id → status, from voyage's database."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(select(Booking.booking_id, Booking.status)).all()
        return dict(rows)
    finally:
        engine.dispose()


def ledger_by_kind(database_url: str) -> dict[str, int]:
    """Emails notification's ledger records as sent, per kind."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(SentNotification.kind, func.count())
                .where(SentNotification.status == "sent")
                .group_by(SentNotification.kind)
            ).all()
        return dict(sorted(rows))
    finally:
        engine.dispose()


#: The key under which `dlq_by_reason` counts letters beyond the first of a record.
COPIES = "(written again)"


def dlq_by_reason(
    bootstrap: str, groups: Sequence[str], topics: Topics = DEFAULT_TOPICS
) -> dict[str, dict[str, int]]:
    """group → (error type → records dead-lettered), the topics read in parallel.

    Records are counted once however many letters they have (`dlq.first_copies`); the
    extra letters, written for records redelivered after a lost assignment, are counted
    under `COPIES`.
    """
    config = {"bootstrap.servers": bootstrap, "fetch.wait.max.ms": "50"}

    def count(group: str) -> dict[str, int]:
        entries = [dlq.read_entry(r) for r in read_all(config, topics.dlq(group))]
        first = dlq.first_copies(entries)
        counts = dict(sorted(Counter(e.error_type for e in first).items()))
        if len(entries) > len(first):
            counts[COPIES] = len(entries) - len(first)
        return counts

    with ThreadPoolExecutor(len(groups)) as pool:
        return dict(zip(groups, pool.map(count, groups), strict=True))


class AnalyticsCliError(RuntimeError):
    """`analytics-consumer report` or `dashboard` failed; the message carries its output."""


def analytics_report_and_dashboard(database_url: str, dashboard: Path) -> dict[str, Any]:
    """Run `analytics-consumer report --json` and `dashboard --out` side by side; the report."""
    env = {**base_env(), "DATABASE_URL": database_url}  # default alert settings, as the service had
    commands = {
        "report": ["report", "--json"],
        "dashboard": ["dashboard", "--out", str(dashboard)],
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "analytics_consumer", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, args in commands.items()
    }
    outputs = {name: _finish(name, p) for name, p in processes.items()}
    report: dict[str, Any] = json.loads(outputs["report"])
    return report


def _finish(name: str, process: subprocess.Popen[bytes]) -> bytes:
    try:
        out, err = process.communicate(timeout=ANALYTICS_CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    if process.returncode != 0:
        raise AnalyticsCliError(
            f"analytics-consumer {name} exited {process.returncode}: {err.decode(errors='replace')}"
        )
    return out


HEADLINE_KEYS = (
    "payments_initiated",
    "payments_completed",
    "payments_failed",
    "payments_refunded",
    "success_rate",
    "failure_rate",
    "refund_rate",
    "revenue",
    "refunded_amount",
    "events",
    "latest_event_at",
    "alerts",
)


def headline(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's figures a summary shows (the rest is on the dashboard)."""
    return {key: report.get(key) for key in HEADLINE_KEYS}
