"""A day reconciled against Stripe's balance report, through the analytics service on the broker.

The spec's webhook publishes `transactionId` = the PaymentIntent id; the gateway's report is
Stripe's `balance_change_from_activity.itemized` CSV of that day (with `payment_intent_id`).
The daily job (`reconcile --record`) runs as a separate process, like a CronJob, and its
outcome appears on the running service's /metrics, where the alert rules read it.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

import pytest

from common.topics import GROUP_ANALYTICS, Topics
from dreamscape_dev.testing import builders
from dreamscape_dev.testing.broker import create_topics
from tests.analytics.test_reconcile import BALANCE
from tests.deploy.deployment import ROOT
from tests.deploy.observability import metrics_port, scrape, service_env, wait_scraped
from tests.integration.helpers import (
    ServiceProcess,
    next_offsets,
    process_env,
    produce,
    service_process,
    wait_committed,
)

pytestmark = pytest.mark.integration

FIXTURE_DAY: Final = "2025-12-18"
DAY: Final = "2026-03-05"
PREFIX: Final = "dreamscape_analytics_reconciliation_"


@dataclass
class Analytics:
    bootstrap: str
    topics: Topics
    group: str
    database: str
    service: ServiceProcess
    port: int

    def reconcile(self, report: Path) -> int:
        """The daily job as its own process: `reconcile --record --day DAY`; its exit code."""
        env = process_env(self.bootstrap, self.topics, DATABASE_URL=self.database)
        done = subprocess.run(
            [sys.executable, "-m", "analytics_consumer", "reconcile", "--record", "--day", DAY,
             "--gateway-report", str(report)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return done.returncode


@pytest.fixture(scope="module")
def analytics(
    kafka_bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Analytics]:
    """The analytics service on private topics, its /metrics port known."""
    directory = tmp_path_factory.mktemp("reconciliation")
    topics = Topics(prefix=f"r{uuid.uuid4().hex[:8]}-")
    group = f"{GROUP_ANALYTICS}-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap_servers, [*topics.payment_topics, topics.dlq(group)])
    env = service_env(
        kafka_bootstrap_servers, topics, group, directory, ANALYTICS_REFRESH_SECONDS="0"
    )
    with service_process("analytics_consumer", env, directory) as service:
        port = metrics_port(service)
        yield Analytics(kafka_bootstrap_servers, topics, group, env["DATABASE_URL"], service, port)


def _at(clock: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{clock}+00:00")


def _published(analytics: Analytics) -> None:
    """The spec webhook's events for the report's PaymentIntents, handled and committed."""
    documents = [
        builders.event("payment.initiated", at=_at("10:31:00"), paymentId="pay_r1",
                       amount=Decimal("1250.00"), currency="EUR"),
        builders.event("payment.completed", at=_at("10:32:17"), paymentId="pay_r1",
                       amount=Decimal("1250.00"), currency="EUR",
                       transactionId="pi_3QaC1x2eZvKYlo2C0p1"),
        builders.event("payment.initiated", at=_at("11:05:00"), paymentId="pay_r2",
                       amount=Decimal("120000"), currency="JPY"),
        builders.event("payment.completed", at=_at("11:05:42"), paymentId="pay_r2",
                       amount=Decimal("120000"), currency="JPY",
                       transactionId="pi_3QaC1x2eZvKYlo2C0p2"),
        builders.event("payment.refunded", at=_at("14:15:03"), paymentId="pay_r1",
                       refundAmount=Decimal("250.00"), currency="EUR", refundId="refund_r1"),
        builders.event("payment.refunded", at=_at("16:40:02"), paymentId="pay_r1",
                       refundAmount=Decimal("100.00"), currency="EUR", refundId="refund_r2"),
    ]  # fmt: skip
    records = [builders.outbound(d, analytics.topics) for d in documents]
    ends = next_offsets(produce(analytics.bootstrap, records))
    wait_committed(analytics.bootstrap, analytics.group, ends, abort=analytics.service.died)


def _report_of_the_day(directory: Path, *, jpy_gross: str = "120000") -> Path:
    """Stripe's balance report fixture moved to DAY (and the JPY charge's customer amount)."""
    text = BALANCE.read_text().replace(FIXTURE_DAY, DAY)
    text = text.replace(",120000,jpy,", f",{jpy_gross},jpy,")
    path = directory / f"balance-{DAY}-{uuid.uuid4().hex[:6]}.csv"
    path.write_text(text)
    return path


def test_a_day_reconciled_against_stripe_then_a_discrepancy_on_metrics(
    analytics: Analytics, tmp_path: Path
) -> None:
    """The day reconciles with Stripe's report (exit 0, last_success set, no discrepancy); a report whose yen amount the producer divided by 100 gives zero_decimal_scaled on the service's /metrics."""
    _published(analytics)
    before = scrape(analytics.port)
    assert before[f"{PREFIX}last_success_timestamp_seconds"] == 0
    started = datetime.now(UTC) - timedelta(seconds=1)

    assert analytics.reconcile(_report_of_the_day(tmp_path)) == 0
    wait_scraped(
        analytics.service,
        analytics.port,
        "the recorded run on /metrics",
        lambda s: s.get(f"{PREFIX}last_success_timestamp_seconds", 0) >= started.timestamp(),
    )
    clean = scrape(analytics.port)
    assert clean[f"{PREFIX}discrepancies"] == 0  # summed over every kind
    assert clean[f"{PREFIX}movements"] == 4 + 4  # 2 charges and 2 refunds, each side

    assert analytics.reconcile(_report_of_the_day(tmp_path, jpy_gross="12000000")) == 1
    wait_scraped(
        analytics.service,
        analytics.port,
        "the discrepancy on /metrics",
        lambda s: s.get(f"{PREFIX}discrepancies", 0) == 1,
    )
    text = _metrics_text(analytics.port)
    assert f'{PREFIX}discrepancies{{kind="zero_decimal_scaled"}} 1.0' in text


def _metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())
