"""`voyage-consumer status <booking_id>` against a real database (SQLite, then PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from common.schema import connect
from dreamscape_dev.testing.builders import inbound, spec_records
from voyage_consumer.cli import main
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.tables import SCHEMA

pytestmark = pytest.mark.integration


@pytest.fixture
def spec_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database holding the spec's four examples, named by DATABASE_URL."""
    engine = connect(database_url, SCHEMA)
    VoyageHandler(engine, VoyageMetrics(CollectorRegistry()))([inbound(r) for r in spec_records()])
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


class TestStatus:
    def test_it_prints_the_booking_its_facts_and_how_its_status_was_derived(
        self, spec_database: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """For the spec's booking it prints the stored row, the four facts in time order and the derivation steps."""
        assert main(["status", "booking_456def"]) == 0
        out = capsys.readouterr().out
        assert "status cancelled, inventory released" in out
        assert "refunded 1250.00" in out
        assert "facts (4, by time):" in out
        kinds = [line.split()[1] for line in out.splitlines() if line.startswith("  2025-")]
        assert kinds == ["initiated", "failed", "completed", "refunded"]
        assert "a failure of pay_abc123xyz is ignored" in out
        assert "→ status cancelled, inventory released" in out
        assert "stored row matches the derivation" in out
        assert "anomalies (0):" in out

    def test_an_unknown_booking_exits_1_with_one_line(
        self, spec_database: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Asking for a booking the database has never heard of says so on stderr and exits 1."""
        assert main(["status", "bk_nobody"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "nothing is known about booking bk_nobody" in captured.err


def test_a_missing_sqlite_file_is_reported_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` on an SQLite path that does not exist exits 1 and leaves no file behind."""
    path = tmp_path / "absent" / "voyage.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    assert main(["status", "bk_1"]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not path.exists()
