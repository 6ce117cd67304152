"""The outcome of each reconciliation run, kept so that the long-running service can export it.

`reconcile` is a one-shot job (a cron line, a Kubernetes CronJob, a compose one-shot): it
exits before any Prometheus could scrape it. With `--record` it appends one row here per
run (also when the gateway report could not be read), in the analytics database every
instance already shares; `ReconciliationCollector` reads the latest rows when /metrics is
scraped. Compared with a Pushgateway or a node-exporter textfile, this needs nothing more
deployed, works wherever the job runs (any node, any pod), and keeps the history of runs
next to the figures they were compared with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import BigInteger, Engine, Index, Text
from sqlmodel import Field, Session, SQLModel, col, select

from analytics_consumer.reconcile import DISCREPANCY_KINDS, Reconciliation

Outcome = Literal["reconciled", "discrepancies", "failed"]
OUTCOMES: Final = ("reconciled", "discrepancies", "failed")


class ReconciliationRun(SQLModel, table=True):
    __tablename__ = "analytics_reconciliation_run"
    __table_args__ = (Index("ix_analytics_reconciliation_run_finished_ms", "finished_ms"),)

    id: int | None = Field(default=None, primary_key=True)
    started_ms: int = Field(sa_type=BigInteger)
    finished_ms: int = Field(sa_type=BigInteger)
    day: str | None = Field(default=None, max_length=10)
    """The UTC day reconciled; None for all days."""
    report: str = Field(max_length=1024)
    """The gateway report's path, as given."""
    outcome: str = Field(max_length=16)
    matched_by: str | None = Field(default=None, max_length=16)
    recorded: int = Field(default=0, sa_type=BigInteger)
    gateway_rows: int = Field(default=0, sa_type=BigInteger)
    discrepancies: int = Field(default=0, sa_type=BigInteger)
    by_kind: str = Field(default="{}", sa_type=Text)
    """Discrepancies per kind, a JSON object (`{"amount_mismatch": 2, ...}`)."""
    error: str | None = Field(default=None, sa_type=Text)
    """Why a failed run failed (the gateway report's problem)."""


@dataclass(frozen=True, slots=True)
class LatestRuns:
    """The newest run of any outcome, and the newest that compared (reconciled or not)."""

    last: ReconciliationRun | None
    last_completed: ReconciliationRun | None

    def discrepancies(self) -> dict[str, int]:
        """Per kind, from the newest completed run; every kind present, zero when none."""
        counts = dict.fromkeys(DISCREPANCY_KINDS, 0)
        if self.last_completed is not None:
            for kind, n in json.loads(self.last_completed.by_kind).items():
                counts[kind] = int(n)
        return counts


def completed_run(
    result: Reconciliation, *, report: str, started_ms: int, finished_ms: int
) -> ReconciliationRun:
    """The row of a run that compared both sides."""
    return ReconciliationRun(
        started_ms=started_ms,
        finished_ms=finished_ms,
        day=result.day,
        report=report[:1024],
        outcome="discrepancies" if result.discrepancies else "reconciled",
        matched_by=result.match_by,
        recorded=result.recorded,
        gateway_rows=result.gateway_rows,
        discrepancies=len(result.discrepancies),
        by_kind=json.dumps(result.by_kind(), sort_keys=True),
    )


def failed_run(
    error: str, *, day: str | None, report: str, started_ms: int, finished_ms: int
) -> ReconciliationRun:
    """The row of a run that could not compare (the gateway report is missing or unreadable)."""
    return ReconciliationRun(
        started_ms=started_ms,
        finished_ms=finished_ms,
        day=day,
        report=report[:1024],
        outcome="failed",
        error=error[:4000],
    )


def record(engine: Engine, run: ReconciliationRun) -> None:
    """Append `run` (its own short transaction)."""
    with Session(engine) as session:
        session.add(run)
        session.commit()


def latest(session: Session) -> LatestRuns:
    """The newest run, and the newest completed one (by finish time)."""
    newest = select(ReconciliationRun).order_by(
        col(ReconciliationRun.finished_ms).desc(), col(ReconciliationRun.id).desc()
    )
    last = session.exec(newest.limit(1)).first()
    completed = session.exec(
        newest.where(col(ReconciliationRun.outcome) != "failed").limit(1)
    ).first()
    return LatestRuns(_detached(last), _detached(completed))


def _detached(run: ReconciliationRun | None) -> ReconciliationRun | None:
    return None if run is None else ReconciliationRun.model_validate(run.model_dump())
