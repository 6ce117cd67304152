"""The daily reconciliation as a job: `reconcile --record` on SQLite and PostgreSQL, and its outcome on /metrics."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from analytics_consumer.cli import main
from analytics_consumer.reconcile import DISCREPANCY_KINDS
from analytics_consumer.reconciliation_gauges import METRIC_NAMES, ReconciliationCollector
from common.records import Inbound
from dreamscape_dev.testing import builders
from tests.analytics.helpers import engine_for, store_for
from tests.analytics.test_reconcile import BALANCE

pytestmark = pytest.mark.integration

DAY: Final = "2025-12-18"
PREFIX: Final = "dreamscape_analytics_reconciliation_"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(f"2025-12-18T{text}+00:00")


def _spec_webhook_events() -> list[Inbound]:
    """What the spec's Stripe webhook publishes for the fixture's PaymentIntents (transactionId = pi_...)."""
    documents = [
        builders.event("payment.initiated", at=_at("10:31:00"), paymentId="pay_1",
                       amount=Decimal("1250.00"), currency="EUR"),
        builders.event("payment.completed", at=_at("10:32:17"), paymentId="pay_1",
                       amount=Decimal("1250.00"), currency="EUR",
                       transactionId="pi_3QaC1x2eZvKYlo2C0p1"),
        builders.event("payment.initiated", at=_at("11:05:00"), paymentId="pay_2",
                       amount=Decimal("120000"), currency="JPY"),
        builders.event("payment.completed", at=_at("11:05:42"), paymentId="pay_2",
                       amount=Decimal("120000"), currency="JPY",
                       transactionId="pi_3QaC1x2eZvKYlo2C0p2"),
        builders.event("payment.refunded", at=_at("16:41:00"), paymentId="pay_1",
                       refundAmount=Decimal("350.00"), currency="EUR", refundId="refund_1"),
    ]  # fmt: skip
    return builders.inbounds(documents)


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An analytics database (SQLite, then PostgreSQL) holding what the spec's producer published for the fixture's day."""
    engine = engine_for(database_url)
    stream = _spec_webhook_events()
    store = store_for(engine, stream)
    store.apply(stream)
    monkeypatch.setenv("DATABASE_URL", database_url)
    yield engine
    engine.dispose()


def _samples(engine: Engine) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(ReconciliationCollector(engine, ttl_s=0))
    found = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(PREFIX):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


class TestReconcileCommand:
    def test_the_spec_producer_reconciles_with_stripe_balance_report(
        self, database: Engine, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Events whose transactionId is the PaymentIntent id reconcile with Stripe's itemized balance report of the day (exit 0), refunds matched through their payment."""
        assert main(["reconcile", "--gateway-report", str(BALANCE), "--day", DAY, "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["matched_by"] == "payment_intent"
        assert document["discrepancies"] == []
        assert document["ignored_by_category"] == {"dispute": 1, "fee": 1}

    def test_a_recorded_run_with_discrepancies_is_on_metrics(
        self, database: Engine, tmp_path: Path
    ) -> None:
        """`--record` stores a run whose discrepancies by kind, time and movement counts the collector exports."""
        report = tmp_path / "stripe-2025-12-18.csv"
        lines = BALANCE.read_text().splitlines()
        report.write_text("\n".join(line for line in lines if "bkg_2" not in line) + "\n")
        before = datetime.now(UTC).timestamp()
        code = main(
            ["reconcile", "--gateway-report", str(tmp_path / "stripe-{day}.csv"), "--day", DAY,
             "--record"]
        )  # fmt: skip
        assert code == 1
        samples = _samples(database)
        assert samples[f'{PREFIX}discrepancies{{kind="missing_in_gateway"}}'] == 1
        assert sum(samples[f'{PREFIX}discrepancies{{kind="{k}"}}'] for k in DISCREPANCY_KINDS) == 1
        assert samples[f"{PREFIX}last_success_timestamp_seconds"] >= int(before)
        assert (
            samples[f"{PREFIX}last_run_timestamp_seconds"]
            == samples[f"{PREFIX}last_success_timestamp_seconds"]
        )
        assert samples[f"{PREFIX}last_run_failed"] == 0
        assert samples[f'{PREFIX}movements{{side="events"}}'] == 3
        assert samples[f'{PREFIX}movements{{side="gateway"}}'] == 3

    def test_a_missing_report_is_a_failed_run_that_keeps_the_last_success(
        self, database: Engine, tmp_path: Path
    ) -> None:
        """A run whose report is absent exits 2 and is recorded as failed: last_run moves, last_success and the discrepancies stay those of the previous run."""
        assert main(["reconcile", "--gateway-report", str(BALANCE), "--day", DAY, "--record"]) == 0
        success = _samples(database)[f"{PREFIX}last_success_timestamp_seconds"]
        missing = tmp_path / "absent.csv"
        assert main(["reconcile", "--gateway-report", str(missing), "--day", DAY, "--record"]) == 2
        samples = _samples(database)
        assert samples[f"{PREFIX}last_run_failed"] == 1
        assert samples[f"{PREFIX}last_success_timestamp_seconds"] == success
        assert samples[f"{PREFIX}last_run_timestamp_seconds"] >= success
        assert samples[f'{PREFIX}discrepancies{{kind="amount_mismatch"}}'] == 0

    def test_yesterday_names_the_report_file_of_the_previous_utc_day(
        self, database: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--day yesterday` reconciles the previous UTC day and puts it in the report's `{day}`."""
        yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        shutil.copy(BALANCE, tmp_path / f"stripe-{yesterday}.csv")
        pattern = str(tmp_path / "stripe-{day}.csv")
        code = main(["reconcile", "--gateway-report", pattern, "--day", "yesterday", "--json"])
        document = json.loads(capsys.readouterr().out)
        assert document["day"] == yesterday
        assert code == 0  # the fixture's rows are days away: outside the day, not discrepancies
        assert document["ignored_by_category"]["outside_day"] == 4


class TestCollector:
    def test_without_any_run_every_family_is_exported_at_zero(self, database: Engine) -> None:
        """Before the first run the timestamps are 0 (so the not-run alert can fire) and every kind is 0."""
        samples = _samples(database)
        assert samples[f"{PREFIX}last_run_timestamp_seconds"] == 0
        assert samples[f"{PREFIX}last_success_timestamp_seconds"] == 0
        assert {f'{PREFIX}discrepancies{{kind="{k}"}}' for k in DISCREPANCY_KINDS} <= set(samples)
        exported = {name.split("{")[0] for name in samples}
        assert exported | {f"{PREFIX}read_errors_total"} >= {
            n for n in METRIC_NAMES if not n.endswith("_total")
        }

    def test_an_unreachable_database_exports_no_value_and_counts_the_error(
        self, database: Engine, tmp_path: Path
    ) -> None:
        """A failed read yields no gauge sample (not a false zero) and increments read_errors_total."""
        broken = engine_for(f"sqlite:///{tmp_path}/ok.db")
        broken.dispose()
        (tmp_path / "ok.db").unlink()
        (tmp_path / "ok.db").mkdir()  # a directory where the file was: every connect fails
        collector = ReconciliationCollector(broken, ttl_s=0)
        registry = CollectorRegistry()
        registry.register(collector)
        text = generate_latest(registry).decode()
        assert f"{PREFIX}read_errors_total 1.0" in text
        assert f"{PREFIX}last_run_timestamp_seconds" not in text
        with pytest.raises(OperationalError):
            broken.connect()
