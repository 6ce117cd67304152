"""The read-side commands on a real SQLite database: report, reconcile, dashboard in Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analytics_consumer.cli import main
from dreamscape_dev.simulator import SimulationConfig
from dreamscape_dev.testing.browser import HeadlessChromium
from tests.analytics import independent
from tests.analytics.helpers import apply_all, engine_for, store_for
from tests.analytics.streams import as_inbound, in_batches, simulated
from tests.integration.helpers import ROOT

pytestmark = pytest.mark.integration

CONFIG = SimulationConfig(flows=300, seed=3, duplicate_rate=0.05, reorder_rate=0.2)


@pytest.fixture
def filled(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL of a database holding a simulated stream."""
    stream = as_inbound(simulated(CONFIG))
    engine = engine_for(sqlite_url)
    apply_all(store_for(engine, stream), in_batches(stream, 250))
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    return sqlite_url


class TestReport:
    def test_report_json_is_one_object_with_the_exact_figures(self, filled: str) -> None:
        """`python -m analytics_consumer report --json` prints one JSON object equal to the independently computed figures."""
        completed = subprocess.run(
            [sys.executable, "-m", "analytics_consumer", "report", "--json"],
            cwd=ROOT,
            env={"DATABASE_URL": filled, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            check=True,
            timeout=60,
        )
        document = json.loads(completed.stdout)
        expected = independent.figures(independent.distinct_events(simulated(CONFIG)))
        assert independent.comparable(document) == expected
        assert {alert["name"] for alert in document["alerts"]} >= {"high_failure_rate"}

    def test_a_day_report_and_the_table(
        self, filled: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`report --day` scopes the figures to that UTC day; without --json a table is printed."""
        assert main(["report", "--json", "--day", "2025-12-18"]) == 0
        document = json.loads(capsys.readouterr().out)
        expected = independent.figures(independent.distinct_events(simulated(CONFIG)), "2025-12-18")
        assert independent.comparable(document) == expected
        assert main(["report"]) == 0
        assert "Payments report: all days" in capsys.readouterr().out

    def test_a_malformed_day_is_a_usage_error(self, filled: str) -> None:
        """`--day 18/12/2025` exits with code 2."""
        with pytest.raises(SystemExit) as exit_info:
            main(["report", "--day", "18/12/2025"])
        assert exit_info.value.code == 2


class TestReconcile:
    def _gateway_rows(self) -> list[str]:
        """The day's charges and refunds as the gateway would list them (our CSV format)."""
        rows = []
        for record in independent.distinct_events(simulated(CONFIG)):
            payload = record["payload"]
            if independent.day(record) != "2025-12-18":
                continue
            if record["eventType"] == "payment.completed":
                rows.append(
                    f"{payload['transactionId']},charge,{payload['amount']},{payload['currency'].lower()}"
                )
            elif record["eventType"] == "payment.refunded":
                rows.append(
                    f"{payload['refundId']},refund,{payload['refundAmount']},{payload['currency']}"
                )
        return rows

    def test_a_matching_gateway_report_exits_zero(
        self, filled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The day's charges and refunds listed exactly as recorded reconcile with no discrepancy."""
        report = tmp_path / "gateway.csv"
        report.write_text("id,type,amount,currency\n" + "\n".join(self._gateway_rows()))
        assert main(["reconcile", "--gateway-report", str(report), "--day", "2025-12-18"]) == 0
        assert "0 discrepancies" in capsys.readouterr().out

    def test_every_kind_of_discrepancy_is_listed_and_exits_one(
        self, filled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A gateway report missing one charge, with a changed amount, a changed currency, an unknown id and a repeated row, gives each discrepancy and exit code 1."""
        rows = [row for row in self._gateway_rows() if ",charge," in row]
        missing, amount, currency, repeated, *rest = rows
        ref, kind, value, cur = amount.split(",")
        changed_amount = f"{ref},{kind},{value}1,{cur}"
        ref_c, kind_c, value_c, _ = currency.split(",")
        changed_currency = f"{ref_c},{kind_c},{value_c},XAU"
        unknown = "stripe_ch_unknown,charge,1.00,EUR"
        report = tmp_path / "gateway.csv"
        lines = [changed_amount, changed_currency, repeated, repeated, unknown, *rest]
        report.write_text("id,type,amount,currency\n" + "\n".join(lines) + "\n")
        exit_code = main(
            ["reconcile", "--gateway-report", str(report), "--day", "2025-12-18", "--json"]
        )
        found = {(d["kind"], d["id"]) for d in json.loads(capsys.readouterr().out)["discrepancies"]}
        assert exit_code == 1
        assert ("missing_in_gateway", missing.split(",")[0]) in found
        assert ("amount_mismatch", ref) in found
        assert ("currency_mismatch", ref_c) in found
        assert ("duplicate_in_gateway", repeated.split(",")[0]) in found
        assert ("missing_in_events", "stripe_ch_unknown") in found
        assert len(found) == 5

    def test_an_unreadable_gateway_report_exits_two(self, filled: str, tmp_path: Path) -> None:
        """A CSV without the needed columns is an input error (exit code 2), not a discrepancy."""
        report = tmp_path / "gateway.csv"
        report.write_text("foo,bar\n1,2\n")
        assert main(["reconcile", "--gateway-report", str(report)]) == 2


class TestDashboard:
    def test_the_dashboard_renders_its_charts_in_chromium_without_errors(
        self, filled: str, tmp_path: Path, chromium: HeadlessChromium
    ) -> None:
        """The page shows every chart (SVG visible, titles visible) with no console error, and fetches nothing."""
        page_path = tmp_path / "dashboard.html"
        assert main(["dashboard", "--out", str(page_path)]) == 0
        html = page_path.read_text()
        assert "<script" not in html
        assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        with chromium.open(page_path) as rendered:
            titles = [
                "Payments by day",
                "Success, failure and refund rates by day",
                "Revenue by currency and payment method",
                "Payment methods (initiated payments)",
                "Failure reasons",
                "Refund reasons",
                "Time to complete",
            ]
            for title in titles:
                assert rendered.visible(title), title
            charts = rendered.page.locator("svg.chart")
            assert charts.count() == len(titles)
            for index in range(charts.count()):
                assert charts.nth(index).is_visible()
                assert charts.nth(index).locator("rect, polyline, circle").count() > 0
            rendered.page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert rendered.errors == []
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
