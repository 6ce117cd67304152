"""The analytics tables. One database (SQLite or PostgreSQL) may be shared by many instances.

* `analytics_offset`: per Kafka partition, the next offset whose effects are *not* yet in
  this database. Written in the same transaction as the effects: it is where a consumer
  resumes, and the fence that stops a stale instance from writing (see `store`).
* `business_fact` (`common.business`): the business key of every counted event, with its
  eventId and fingerprint: the one dedup row per event (`dedup`). `business_anomaly`: the
  events that restated a known fact with other content.
* `processed_event` (common's inbox): written by releases before issue 25, no longer; kept
  so the revisions need not change (`dedup` says why it went).
* `analytics_daily`: additive counters per UTC day, metric and key (event counts, amounts
  per currency, methods, failure reasons). `writer` is a per-process id: each instance adds
  to its own rows, so instances never wait on each other's counters; reads sum over writers.
* `analytics_payment`: one row per paymentId with the facts of its events, merged by upsert
  whichever instance sees which event first; medians, percentiles, time to complete,
  revenue by method and pending payments are computed from it.
* `analytics_refund`: one row per refund event. With the payments' transaction ids, this
  is what reconciliation compares with the gateway's report.
* `analytics_audit` (`audit`): every accepted event with its envelope and Kafka
  coordinates, append-only, partitioned by month on PostgreSQL.
* `analytics_reconciliation_run` (`reconciliation_runs`): the outcome of each recorded
  `reconcile` run, exported by the service as gauges.

Money is in integer units of 10^-4 (`money`), times in epoch milliseconds (`days`).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import BigInteger, Index, text
from sqlmodel import Field, SQLModel

from analytics_consumer.audit import AnalyticsAudit
from analytics_consumer.reconciliation_runs import ReconciliationRun
from common import business
from common.db import ProcessedEvent
from common.schema import Schema


def _partial_index(column: str) -> Index:
    """An index of the rows where `column` is set: smaller, and cheaper to maintain on upsert.

    Queries always bound the column (`column >= :lo`), which implies NOT NULL, so both
    databases use these indexes for them.
    """
    condition = text(f"{column} IS NOT NULL")
    return Index(
        f"ix_analytics_payment_{column}",
        column,
        sqlite_where=condition,
        postgresql_where=condition,
    )


class AnalyticsOffset(SQLModel, table=True):
    __tablename__ = "analytics_offset"

    topic: str = Field(primary_key=True, max_length=255)
    kafka_partition: int = Field(primary_key=True)
    next_offset: int = Field(sa_type=BigInteger)


class AnalyticsDaily(SQLModel, table=True):
    __tablename__ = "analytics_daily"

    day: str = Field(primary_key=True, max_length=10)
    metric: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=256)
    writer: str = Field(primary_key=True, max_length=32)
    n: int = Field(sa_type=BigInteger)
    units: int = Field(sa_type=BigInteger)


class AnalyticsPayment(SQLModel, table=True):
    __tablename__ = "analytics_payment"
    __table_args__ = (
        _partial_index("initiated_ms"),
        _partial_index("completed_ms"),
        _partial_index("failed_ms"),
        _partial_index("first_refund_ms"),
    )

    payment_id: str = Field(primary_key=True, max_length=256)
    method: str | None = Field(default=None, max_length=256)
    currency: str | None = Field(default=None, max_length=3)
    initiated_units: int | None = Field(default=None, sa_type=BigInteger)
    initiated_ms: int | None = Field(default=None, sa_type=BigInteger)
    completed_currency: str | None = Field(default=None, max_length=3)
    completed_units: int | None = Field(default=None, sa_type=BigInteger)
    completed_ms: int | None = Field(default=None, sa_type=BigInteger)
    transaction_id: str | None = Field(default=None, max_length=256)
    completions: int = Field(default=0, sa_type=BigInteger)
    """payment.completed events counted for this payment (more than one is a duplicate)."""
    failed_ms: int | None = Field(default=None, sa_type=BigInteger)
    first_refund_ms: int | None = Field(default=None, sa_type=BigInteger)
    duration_ms: int | None = Field(default=None, sa_type=BigInteger)
    """completed_ms - initiated_ms, set by whichever write joins the two halves."""


class AnalyticsRefund(SQLModel, table=True):
    __tablename__ = "analytics_refund"
    __table_args__ = (Index("ix_analytics_refund_refunded_ms", "refunded_ms"),)

    event_id: str = Field(primary_key=True, max_length=64)
    refund_id: str = Field(max_length=256)
    payment_id: str = Field(max_length=256)
    currency: str = Field(max_length=3)
    units: int = Field(sa_type=BigInteger)
    refunded_ms: int = Field(sa_type=BigInteger)


MODELS: Final = (
    ProcessedEvent,
    *business.MODELS,
    AnalyticsOffset,
    AnalyticsDaily,
    AnalyticsPayment,
    AnalyticsRefund,
    AnalyticsAudit,
    ReconciliationRun,
)

SCHEMA: Final = Schema("analytics", "analytics_consumer.migrations", MODELS)
"""The analytics database, built by the revisions in `analytics_consumer/migrations`."""
