"""Prometheus metrics of the notification service, in the registry `run_service` passes in.

`dreamscape_notification_emails_total{kind,outcome}` counts every notifying event once per
decision: `sent`, `failed` (a 5xx refusal, recorded), `undeliverable` (no address, recorded),
`stale` (a failure notice for a paid booking, not sent) and `duplicate` (already notified).
Alert on `failed` and `undeliverable`; `duplicate` rising means redeliveries.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

from notification_consumer.domain import KINDS

EmailOutcome = Literal["sent", "failed", "undeliverable", "deferred", "stale", "duplicate"]
OUTCOMES: Final[tuple[EmailOutcome, ...]] = (
    "sent",
    "failed",
    "undeliverable",
    "deferred",
    "stale",
    "duplicate",
)
SEND_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class NotificationMetrics:
    """Counters and the SMTP latency histogram, with every label set present from the start."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.emails = Counter(
            "dreamscape_notification_emails_total",
            "Notifications by kind and outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "dreamscape_notification_smtp_send_seconds",
            "Time to hand one message to the SMTP server (connection set-up included)",
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        for kind in KINDS:
            for outcome in OUTCOMES:
                self.emails.labels(kind=kind, outcome=outcome)

    def count(self, kind: str, outcome: EmailOutcome, amount: int = 1) -> None:
        self.emails.labels(kind=kind, outcome=outcome).inc(amount)
