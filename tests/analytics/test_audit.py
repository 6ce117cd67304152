"""The audit trail on a real database (SQLite, then PostgreSQL): stored once, exported, pruned.

Every accepted event is kept with its exact envelope and Kafka coordinates in
`analytics_audit`, in the transaction of the batch's figures and offsets; `audit export`
writes a range of days as JSON lines; `audit prune` removes whole months past the retention.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from analytics_consumer.audit_trail import prune
from analytics_consumer.cli import main
from analytics_consumer.store import AnalyticsStore
from analytics_consumer.tables import SCHEMA
from common.parsing import parse_event
from common.records import Inbound, Record, TopicPartition
from common.schema import downgrade, migrate
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.testing.builders import encode, event, spec_bytes
from tests.analytics.helpers import engine_for, report
from tests.integration.helpers import ROOT

pytestmark = pytest.mark.integration

COMPLETED = DEFAULT_TOPICS.for_event("payment.completed")
BROKER_MS = 1_766_053_935_123


def _inbound(
    value: bytes,
    *,
    offset: int,
    partition: int = 2,
    key: bytes | None = b"pay_abc123xyz",
    topic: str = COMPLETED,
) -> Inbound:
    record = Record(topic, partition, offset, key, value, (), BROKER_MS)
    return Inbound(record, parse_event(value, topic))


def _completed(at: datetime, payment_id: str, **fields: Any) -> bytes:
    return encode(event("payment.completed", at=at, paymentId=payment_id, **fields))


def _store(engine: Engine, **options: Any) -> AnalyticsStore:
    """A store assigned partition 2 of the completed topic, where these tests' records are."""
    store = AnalyticsStore(engine, **options)
    store.starting_offsets([TopicPartition(COMPLETED, 2)])
    return store


def _audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM analytics_audit ORDER BY occurred_ms"))
        return [dict(row._mapping) for row in rows]


class TestStored:
    def test_an_accepted_event_is_stored_once_with_its_envelope_and_coordinates(
        self, database_url: str
    ) -> None:
        """The spec's pretty-printed completed event is stored byte for byte, with topic, partition, offset, key and broker time."""
        engine = engine_for(database_url)
        value = spec_bytes("payment.completed")
        _store(engine).apply([_inbound(value, offset=41)])
        [row] = _audit_rows(engine)
        assert row["envelope"] == value.decode()
        assert (row["topic"], row["kafka_partition"], row["kafka_offset"]) == (COMPLETED, 2, 41)
        assert (row["record_key"], row["broker_ms"]) == ("pay_abc123xyz", BROKER_MS)
        assert row["event_id"] == "b2c3d4e5-f6a7-4b5c-9d8e-0f1a2b3c4d5e"
        assert (row["event_type"], row["payment_id"]) == ("payment.completed", "pay_abc123xyz")
        assert row["source"] == "payment-service"
        assert row["correlation_id"] == "booking-123-payment-flow"
        assert row["causation_id"] == "a1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4d"
        assert row["occurred_ms"] == 1_766_053_935_000  # completedAt 2025-12-18T10:32:15Z
        assert row["outcome"] == "counted"

    def test_a_redelivered_event_id_adds_nothing(self, database_url: str) -> None:
        """The same eventId again at a later offset (a redelivery) leaves the one row of its first delivery."""
        engine = engine_for(database_url)
        store = _store(engine)
        value = _completed(datetime(2025, 12, 18, 10, tzinfo=UTC), "pay_1")
        store.apply([_inbound(value, offset=0)])
        store.apply([_inbound(value, offset=1), _inbound(value, offset=2)])
        rows = _audit_rows(engine)
        assert [row["kafka_offset"] for row in rows] == [0]

    def test_a_rolled_back_batch_leaves_no_row_and_its_retry_one(self, database_url: str) -> None:
        """A crash before commit stores no audit row; the batch applied again stores each event once."""
        engine = engine_for(database_url)

        def crash() -> None:
            raise RuntimeError("killed before commit")

        value = _completed(datetime(2025, 12, 18, 10, tzinfo=UTC), "pay_1")
        crashing = _store(engine, before_commit=crash)
        with pytest.raises(RuntimeError):
            crashing.apply([_inbound(value, offset=0)])
        assert _audit_rows(engine) == []
        _store(engine).apply([_inbound(value, offset=0)])
        assert len(_audit_rows(engine)) == 1

    def test_a_fact_stated_again_under_a_new_event_id_is_audited_as_a_duplicate(
        self, database_url: str
    ) -> None:
        """A redelivered webhook (same content, new eventId) is an accepted event: audited, marked duplicate, counted once."""
        engine = engine_for(database_url)
        document = event("payment.completed", paymentId="pay_1")
        again = event(document)
        _store(engine).apply(
            [_inbound(encode(document), offset=0), _inbound(encode(again), offset=1)]
        )
        outcomes = {row["event_id"]: row["outcome"] for row in _audit_rows(engine)}
        assert outcomes == {document["eventId"]: "counted", again["eventId"]: "duplicate"}
        assert report(engine)["events"]["payment.completed"] == 1

    def test_the_metadata_and_any_unknown_field_stay_in_the_envelope(
        self, database_url: str
    ) -> None:
        """Fields the consumer ignores (metadata, a newer producer's extras) are kept as sent."""
        engine = engine_for(database_url)
        document = event("payment.completed", paymentId="pay_1")
        document["metadata"] = {"ip": "203.0.113.7", "attempt": 2}
        document["producerExtra"] = [1, 2.50]
        value = encode(document)
        _store(engine).apply([_inbound(value, offset=0)])
        [row] = _audit_rows(engine)
        assert row["envelope"] == value.decode()

    def test_a_nul_in_an_envelope_field_is_stored_escaped_and_exact_in_the_envelope(
        self, database_url: str
    ) -> None:
        """`\\u0000` in source or correlationId (text PostgreSQL refuses) is kept as `\\x00` in the search columns, as sent in the envelope."""
        engine = engine_for(database_url)
        document = event("payment.completed", paymentId="pay_1")
        document["source"] = "payment\x00service"
        document["correlationId"] = "\x00"
        value = encode(document)
        _store(engine).apply([_inbound(value, offset=0, key=b"pay\x00\xff")])
        [row] = _audit_rows(engine)
        assert (row["source"], row["correlation_id"]) == ("payment\\x00service", "\\x00")
        assert row["record_key"] == "pay\\x00\\xff"
        assert row["envelope"] == value.decode()
        assert "\\u0000" in row["envelope"]


EXPORT_ALL = ("audit", "export", "--from", "2025-12-17", "--to", "2025-12-19")


def _days_stream() -> list[Inbound]:
    """Three events on 2025-12-17, 2025-12-18 (two, one at 23:59:59.999) and 2025-12-19."""
    times = [
        datetime(2025, 12, 17, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(2025, 12, 18, 0, 0, tzinfo=UTC),
        datetime(2025, 12, 18, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(2025, 12, 19, 0, 0, tzinfo=UTC),
    ]
    return [
        _inbound(_completed(at, f"pay_{n}"), offset=n, key=f"pay_{n}".encode())
        for n, at in enumerate(times)
    ]


class TestExport:
    def test_export_of_a_day_writes_exactly_that_days_events_as_json_lines(
        self, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`audit export --from D --to D` writes one JSON line per event of day D, in time order, and no other."""
        engine = engine_for(database_url)
        stream = _days_stream()
        _store(engine).apply(stream)
        monkeypatch.setenv("DATABASE_URL", database_url)
        out = tmp_path / "audit.jsonl"
        assert (
            main(
                ["audit", "export", "--from", "2025-12-18", "--to", "2025-12-18", "--out", str(out)]
            )
            == 0
        )
        lines = out.read_text(encoding="utf-8").splitlines()
        documents = [json.loads(line, parse_float=Decimal) for line in lines]
        assert [d["eventId"] for d in documents] == [i.event.event_id for i in stream[1:3]]
        first = documents[0]
        assert first["envelope"] == json.loads(stream[1].record.value or b"", parse_float=Decimal)
        assert first["kafka"] == {
            "topic": COMPLETED,
            "partition": 2,
            "offset": 1,
            "key": "pay_1",
            "timestamp": "2025-12-18T10:32:15.123Z",
        }
        assert first["occurredAt"] == "2025-12-18T00:00:00.000Z"
        assert first["outcome"] == "counted"

    def test_an_envelope_is_exported_on_one_line_with_its_numbers_as_sent(
        self, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The pretty-printed spec example becomes one line whose envelope keeps `1250.00` as written."""
        engine = engine_for(database_url)
        _store(engine).apply([_inbound(spec_bytes("payment.completed"), offset=0)])
        monkeypatch.setenv("DATABASE_URL", database_url)
        out = tmp_path / "audit.jsonl"
        assert (
            main(
                ["audit", "export", "--from", "2025-12-01", "--to", "2025-12-31", "--out", str(out)]
            )
            == 0
        )
        [line] = out.read_text(encoding="utf-8").splitlines()
        assert '"amount":1250.00' in line
        expected = json.loads(spec_bytes("payment.completed"), parse_float=Decimal)
        assert json.loads(line, parse_float=Decimal)["envelope"] == expected

    def test_without_out_the_lines_go_to_standard_output_and_the_count_to_standard_error(
        self, sqlite_url: str
    ) -> None:
        """`python -m analytics_consumer audit export` with no `--out` prints only JSON lines on stdout."""
        engine = engine_for(sqlite_url)
        _store(engine).apply(_days_stream())
        done = subprocess.run(
            [sys.executable, "-m", "analytics_consumer", *EXPORT_ALL],
            cwd=ROOT,
            env={"DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            check=True,
            timeout=60,
        )
        lines = done.stdout.decode().splitlines()
        assert [json.loads(line)["paymentId"] for line in lines] == [f"pay_{n}" for n in range(4)]
        assert "exported 4 events" in done.stderr.decode()

    def test_export_refuses_a_range_that_ends_before_it_starts(
        self, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--to` before `--from` exits 2 with a one-line message and writes nothing."""
        monkeypatch.setenv("DATABASE_URL", sqlite_url)
        assert main(["audit", "export", "--from", "2025-12-19", "--to", "2025-12-18"]) == 2
        assert "--to" in capsys.readouterr().err


MONTHS = [
    datetime(2018, 5, 10, tzinfo=UTC),
    datetime(2019, 11, 30, 23, 59, tzinfo=UTC),
    datetime(2019, 12, 1, tzinfo=UTC),
    datetime(2026, 11, 15, tzinfo=UTC),
]
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _months_stored(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        values = connection.execute(text("SELECT occurred_ms FROM analytics_audit")).scalars()
        return sorted({datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m") for ms in values})


def _filled_months(url: str) -> Engine:
    engine = engine_for(url)
    stream = [
        _inbound(_completed(at, f"pay_{n}"), offset=n, key=f"pay_{n}".encode())
        for n, at in enumerate(MONTHS)
    ]
    _store(engine).apply(stream)
    return engine


class TestPrune:
    def test_prune_drops_the_months_older_than_the_retention_only(self, database_url: str) -> None:
        """With 7 years on 2026-12-07, months up to 2019-11 go; 2019-12 onwards stay."""
        engine = _filled_months(database_url)
        pruned = prune(engine, years=7, now=NOW, dry_run=False)
        assert [p.month for p in pruned] == ["2018-05", "2019-11"]
        assert [p.events for p in pruned] == [1, 1]
        assert _months_stored(engine) == ["2019-12", "2026-11"]
        assert prune(engine, years=7, now=NOW, dry_run=False) == []

    def test_a_dry_run_lists_the_months_and_changes_nothing(self, database_url: str) -> None:
        """`dry_run` names the months that would go, with their event counts, and deletes none."""
        engine = _filled_months(database_url)
        pruned = prune(engine, years=7, now=NOW, dry_run=True)
        assert [(p.month, p.events) for p in pruned] == [("2018-05", 1), ("2019-11", 1)]
        assert _months_stored(engine) == ["2018-05", "2019-11", "2019-12", "2026-11"]

    def test_the_prune_command_reports_what_it_dropped(
        self,
        database_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`audit prune --older-than-years 7` (today's clock) drops 2018-05 and says so; `--dry-run` first changes nothing."""
        engine = _filled_months(database_url)
        monkeypatch.setenv("DATABASE_URL", database_url)
        assert main(["audit", "prune", "--older-than-years", "7", "--dry-run"]) == 0
        assert "would drop 2018-05 (1 event)" in capsys.readouterr().out
        assert len(_months_stored(engine)) == 4
        assert main(["audit", "prune", "--older-than-years", "7"]) == 0
        assert "dropped 2018-05 (1 event)" in capsys.readouterr().out
        assert "2018-05" not in _months_stored(engine)

    def test_a_retention_under_one_year_is_refused(
        self, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`--older-than-years 0` exits 2: the audit trail is never emptied by a typo."""
        monkeypatch.setenv("DATABASE_URL", sqlite_url)
        with pytest.raises(SystemExit) as exited:
            main(["audit", "prune", "--older-than-years", "0"])
        assert exited.value.code == 2


@pytest.mark.postgres
class TestPartitions:
    def test_the_table_is_partitioned_by_month_and_rows_land_in_their_month(
        self, postgres_url: str
    ) -> None:
        """On PostgreSQL `analytics_audit` is range-partitioned; each month's rows are in its own partition."""
        engine = _filled_months(postgres_url)
        with engine.connect() as connection:
            kind = connection.execute(
                text("SELECT relkind FROM pg_class WHERE relname = 'analytics_audit'")
            ).scalar_one()
            placed = connection.execute(
                text("SELECT tableoid::regclass::text, count(*) FROM analytics_audit GROUP BY 1")
            ).all()
        assert kind == "p"
        assert sorted(placed) == [
            ("analytics_audit_m201805", 1),
            ("analytics_audit_m201911", 1),
            ("analytics_audit_m201912", 1),
            ("analytics_audit_m202611", 1),
        ]

    def test_prune_drops_whole_partitions(self, postgres_url: str) -> None:
        """Pruning removes the expired months' partitions themselves, not just their rows."""
        engine = _filled_months(postgres_url)
        prune(engine, years=7, now=NOW, dry_run=False)
        names = set(inspect(engine).get_table_names())
        assert {"analytics_audit_m201805", "analytics_audit_m201911"}.isdisjoint(names)
        assert {"analytics_audit_m201912", "analytics_audit_m202611"} <= names

    def test_prune_creates_the_current_and_next_months_partitions(self, postgres_url: str) -> None:
        """The retention job also makes this month's and next month's partitions ahead of their events."""
        engine = engine_for(postgres_url)
        prune(engine, years=7, now=NOW, dry_run=False)
        names = set(inspect(engine).get_table_names())
        assert {"analytics_audit_m202612", "analytics_audit_m202701"} <= names

    def test_a_month_dropped_by_the_retention_job_is_made_again_for_a_late_event(
        self, postgres_url: str
    ) -> None:
        """A store that wrote into 2018-05 before the job dropped it makes the partition again for the next 2018-05 event."""
        engine = engine_for(postgres_url)
        store = _store(engine, now=lambda: NOW)
        old = datetime(2018, 5, 10, tzinfo=UTC)
        store.apply([_inbound(_completed(old, "pay_1"), offset=0)])
        prune(engine, years=7, now=NOW, dry_run=False)
        store.apply([_inbound(_completed(old, "pay_2"), offset=1)])
        assert [row["payment_id"] for row in _audit_rows(engine)] == ["pay_2"]


class TestMigration:
    def test_downgrading_0002_drops_the_audit_table_and_upgrading_restores_it(
        self, database_url: str
    ) -> None:
        """`0002_audit` down removes `analytics_audit` (and its partitions), up makes it again, empty."""
        engine = _filled_months(database_url)
        downgrade(engine, SCHEMA, "0001_baseline")
        names = set(inspect(engine).get_table_names())
        assert not {n for n in names if n.startswith("analytics_audit")}
        assert "analytics_payment" in names
        assert migrate(engine, SCHEMA)[:1] == ["0002_audit"]
        assert _audit_rows(engine) == []
