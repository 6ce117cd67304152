"""The latest reconciliation run as Prometheus gauges, read from the database when scraped.

Registered by the analytics service in its registry. Each scrape reads the two newest rows of
`analytics_reconciliation_run` (an index lookup), at most once per `ttl_s` (the service
passes ANALYTICS_REFRESH_SECONDS): the job runs
once a day, so the figures can be read lazily and need no refresh loop, and an idle service
(no payment events at night) still exports fresh values. Every instance exports the same
values: aggregate with `max`.

A failed read exports no sample of these families this scrape (an absent value, not a false
zero) and counts `dreamscape_analytics_reconciliation_read_errors_total`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Final

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from analytics_consumer.reading import snapshot
from analytics_consumer.reconciliation_runs import LatestRuns, latest

PREFIX: Final = "dreamscape_analytics_reconciliation_"
METRIC_NAMES: Final = (
    f"{PREFIX}last_run_timestamp_seconds",
    f"{PREFIX}last_success_timestamp_seconds",
    f"{PREFIX}last_run_failed",
    f"{PREFIX}discrepancies",
    f"{PREFIX}movements",
    f"{PREFIX}read_errors_total",
)
_log = structlog.get_logger("analytics_consumer.reconciliation_gauges")


class ReconciliationCollector(Collector):
    def __init__(
        self,
        engine: Engine,
        *,
        ttl_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._clock = clock
        self._cached: tuple[float, LatestRuns] | None = None
        self._errors = 0

    def _read(self) -> LatestRuns | None:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self._ttl_s:
            return self._cached[1]
        try:
            with snapshot(self._engine) as session:
                runs = latest(session)
        except DBAPIError as exc:
            self._errors += 1
            _log.warning("reconciliation.read_failed", error=str(exc.orig)[:300])
            return None
        self._cached = (now, runs)
        return runs

    def collect(self) -> Iterator[Metric]:
        runs = self._read()
        errors = CounterMetricFamily(
            f"{PREFIX}read_errors", "Failed reads of the reconciliation runs at scrape time"
        )
        errors.add_metric([], self._errors)
        yield errors
        if runs is None:
            return
        last, completed = runs.last, runs.last_completed
        yield _gauge(
            "last_run_timestamp_seconds",
            "When the latest reconciliation run finished, whatever its outcome (0: never)",
            last.finished_ms / 1000 if last else 0.0,
        )
        yield _gauge(
            "last_success_timestamp_seconds",
            "When the latest run that compared both sides finished (0: never)",
            completed.finished_ms / 1000 if completed else 0.0,
        )
        yield _gauge(
            "last_run_failed",
            "1 if the latest run could not compare (gateway report missing or unreadable)",
            1.0 if last is not None and last.outcome == "failed" else 0.0,
        )
        by_kind = GaugeMetricFamily(
            f"{PREFIX}discrepancies",
            "Discrepancies the latest completed run found, by kind",
            labels=["kind"],
        )
        for kind, n in runs.discrepancies().items():
            by_kind.add_metric([kind], n)
        yield by_kind
        movements = GaugeMetricFamily(
            f"{PREFIX}movements",
            "Charges and refunds the latest completed run compared, by side",
            labels=["side"],
        )
        movements.add_metric(["events"], completed.recorded if completed else 0)
        movements.add_metric(["gateway"], completed.gateway_rows if completed else 0)
        yield movements


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value)
