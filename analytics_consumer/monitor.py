"""Live figures and alerts: read the database now and then, export gauges, log transitions.

After a batch the service asks `after_batch()`; at most every ANALYTICS_REFRESH_SECONDS it
reads the all-time figures (for /metrics) and the alert window (the last
ALERT_WINDOW_SECONDS of event time before the latest event), evaluates the rules (pure,
`alerts`) and logs one `alert.raised` or `alert.cleared` line per change. A failed read is
logged and counted; it never fails the batch, whose effects are already committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from analytics_consumer.alerts import Alert, AlertRules, changes, evaluate
from analytics_consumer.gauges import AnalyticsGauges
from analytics_consumer.reading import read_figures, read_window, snapshot

_log = structlog.get_logger("analytics_consumer.monitor")


class Monitor:
    def __init__(
        self,
        engine: Engine,
        rules: AlertRules,
        gauges: AnalyticsGauges,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        log: Any = None,
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._gauges = gauges
        self._interval_s = interval_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._log = log or _log
        self._due = clock()
        self.active: list[Alert] = []

    def after_batch(self) -> None:
        """Refresh if the interval has passed since the last refresh."""
        if self._clock() >= self._due:
            self.refresh()

    def refresh(self) -> None:
        """Read, export, evaluate and log alert changes now."""
        self._due = self._clock() + self._interval_s
        try:
            with snapshot(self._engine) as session:
                figures = read_figures(session=session, day=None, rules=self._rules)
                window = read_window(session=session, rules=self._rules)
        except DBAPIError as exc:
            self._gauges.refresh_errors.inc()
            self._log.warning("analytics.refresh_failed", error=str(exc.orig))
            return
        alerts = [] if window is None else evaluate(window, self._rules)
        raised, cleared = changes(self.active, alerts)
        window_s = self._rules.window_ms // 1000
        for alert in raised:
            self._log.warning(
                "alert.raised",
                alert=alert.name,
                value=float(alert.value),
                threshold=float(alert.threshold),
                detail=alert.message,
                window_seconds=window_s,
            )
        for alert in cleared:
            self._log.info("alert.cleared", alert=alert.name, threshold=float(alert.threshold))
        self.active = alerts
        self._gauges.publish(
            figures, alerts, self._wall_clock(), window, self._rules.window_ms / 1000
        )
