"""`python -m dreamscape_dev.demo` end to end on the embedded broker, judged by the simulator's own figures.

The demo runs once per module (a small stream, so the suite stays fast); the tests read what
it left in its output directory: `summary.json` for the figures, the saved emails and the
dashboard for what a person would open.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from babel.numbers import format_currency

from dreamscape_dev.demo.run import simulation_config
from dreamscape_dev.simulator import Simulation, generate
from dreamscape_dev.testing.browser import HeadlessChromium
from tests.demo.support import ROOT, demo_command

pytestmark = pytest.mark.integration

FLOWS = 60
SEED = 7
GROUPS = ("voyage-service", "notification-service", "analytics-service")


@dataclass(frozen=True)
class DemoRun:
    """What one demo run printed and wrote, and the simulation it published."""

    result: subprocess.CompletedProcess[str]
    output: Path
    simulation: Simulation

    @property
    def summary(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.output / "summary.json").read_text())
        return document


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """Run the demo once as a subprocess, the way `make demo` does, with a small stream."""
    output = tmp_path_factory.mktemp("demo") / "out"
    result = subprocess.run(
        demo_command(flows=FLOWS, seed=SEED, timeout_s=45, output=output),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return DemoRun(result, output, generate(simulation_config(FLOWS, SEED)))


def _money(amounts: dict[str, str]) -> dict[str, Decimal]:
    return {currency: Decimal(text) for currency, text in amounts.items()}


class TestDemoRun:
    def test_the_demo_exits_zero_with_the_figures_the_simulator_expects(
        self, demo: DemoRun
    ) -> None:
        """Every service catches up and stops cleanly, and bookings, emails, dead letters and analytics match the simulation."""
        assert demo.result.returncode == 0, demo.result.stdout + demo.result.stderr
        assert "demo OK" in demo.result.stdout
        summary, expected = demo.summary, demo.simulation.expected

        assert summary["ok"] is True
        assert summary["exit_codes"] == {"voyage": 0, "notification": 0, "analytics": 0}
        assert summary["bookings_by_status"] == dict(Counter(expected.bookings.values()))
        emails = summary["emails_by_kind"]
        assert emails["receipt"] == expected.emails_by_kind["receipt"]
        assert emails["refund"] == expected.emails_by_kind["refund"]
        assert emails.get("payment_failed", 0) >= expected.emails_by_kind.get("payment_failed", 0)
        assert summary["dlq_by_reason"] == {g: expected.poison_by_reason for g in GROUPS}
        analytics = summary["analytics"]
        assert analytics["events"] == expected.events_by_type
        assert analytics["payments_completed"] == expected.events_by_type["payment.completed"]
        assert _money(analytics["revenue"]) == expected.revenue
        assert _money(analytics["refunded_amount"]) == expected.refunded


def _event_payload(simulation: Simulation, event_id: str) -> dict[str, Any]:
    """The payload of the published event `event_id` (amounts as exact decimals)."""
    for record in simulation.records:
        try:
            document = json.loads(record.value or b"", parse_float=Decimal)
        except ValueError:
            continue  # a poison record
        if isinstance(document, dict) and document.get("eventId") == event_id:
            payload: dict[str, Any] = document["payload"]
            return payload
    raise AssertionError(f"no published event {event_id}")


def _receipt(output: Path) -> tuple[Path, str]:
    """The first receipt's HTML file and the eventId its Message-ID was derived from."""
    eml = sorted((output / "mail").glob("*-receipt.eml"))[0]
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    event_id = str(message["Message-ID"]).strip().strip("<>").split(".receipt@")[0]
    return eml.with_suffix(".html"), event_id


class TestDemoPages:
    def test_the_dashboard_and_an_email_render_in_chromium(
        self, demo: DemoRun, chromium: HeadlessChromium, tmp_path: Path
    ) -> None:
        """The dashboard shows an SVG chart and a receipt shows its event's amount, both without console errors."""
        assert demo.result.returncode == 0, demo.result.stderr
        with chromium.open(demo.output / "dashboard.html") as rendered:
            assert rendered.page.locator("svg").first.is_visible()
            rendered.page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert rendered.errors == []

        page, event_id = _receipt(demo.output)
        payload = _event_payload(demo.simulation, event_id)
        amount = format_currency(payload["amount"], payload["currency"], locale="en")
        with chromium.open(page) as rendered:
            assert rendered.visible(amount), amount
            rendered.page.screenshot(path=str(tmp_path / "receipt.png"), full_page=True)
            assert rendered.errors == []
        assert (tmp_path / "receipt.png").stat().st_size > 1000


class TestDemoOnAGivenBroker:
    def test_the_demo_uses_the_broker_named_by_kafka_bootstrap_servers(
        self, kafka_bootstrap_servers: str, tmp_path: Path
    ) -> None:
        """With KAFKA_BOOTSTRAP_SERVERS set the demo starts no broker, runs on the given one (Apache Kafka in CI) under a fresh topic prefix, and passes every check."""
        result = subprocess.run(
            demo_command(flows=FLOWS, seed=SEED, timeout_s=45, output=tmp_path / "out"),
            cwd=ROOT,
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"broker      {kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)" in result.stdout
        assert "embedded Tansu" not in result.stdout
        assert json.loads((tmp_path / "out" / "summary.json").read_text())["ok"] is True
