"""The `dreamscape` CLI against the real broker: simulate, dlq list, dlq replay."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common import dlq
from common.cli import main
from common.kafka import read_all
from common.records import OutboundRecord
from common.topics import Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import BrokerChoice
from tests.integration.helpers import (
    ROOT,
    ObservedRunner,
    payment_record,
    produce,
    runner_settings,
    wait_until,
)

pytestmark = pytest.mark.integration

GROUP = "cli-test"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap_servers: str, topics: Topics) -> None:
    """The CLI reads the same environment as the services."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap_servers)
    monkeypatch.setenv("TOPIC_PREFIX", topics.prefix)


def dead_letter(topics: Topics, bootstrap: str, poison: list[OutboundRecord]) -> None:
    """Run a consumer over `poison` until every record is in the group's DLQ."""
    runner = ObservedRunner(lambda batch: None, runner_settings(topics, bootstrap), group=GROUP)
    produce(bootstrap, poison)
    with runner:
        wait_until(lambda: len(runner.recorder.dead_lettered()) >= len(poison), 20, "dead letters")


class TestDlqList:
    def test_json_lists_each_record_with_its_reason_and_origin(
        self,
        cli_env: None,
        topics: Topics,
        kafka_bootstrap_servers: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`dlq list --json` prints one object per DLQ record with its reason and original position."""
        topic = topics.for_event("payment.completed")
        poison = [
            OutboundRecord(topic, b"k1", b"not json"),
            OutboundRecord(topic, b"k2", None),
        ]
        dead_letter(topics, kafka_bootstrap_servers, poison)
        assert main(["dlq", "list", "--group", GROUP, "--json"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert sorted(r["error_type"] for r in rows) == ["empty_value", "not_json"]
        assert {r["original_topic"] for r in rows} == {topic}
        assert {r["key"] for r in rows} == {"k1", "k2"}
        assert all(r["consumer_group"] == GROUP and r["attempts"] == 1 for r in rows)

    def test_table_counts_records_by_reason(
        self,
        cli_env: None,
        topics: Topics,
        kafka_bootstrap_servers: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The table view names the DLQ topic, the record count and a tally per error type."""
        topic = topics.for_event("payment.failed")
        dead_letter(topics, kafka_bootstrap_servers, [OutboundRecord(topic, b"k", b"[1]")])
        assert main(["dlq", "list", "--group", GROUP]) == 0
        out = capsys.readouterr().out
        assert f"1 record(s) in {topics.dlq(GROUP)}" in out
        assert "not_an_object" in out


class TestDlqReplay:
    def test_replay_sends_the_original_bytes_back_to_the_original_topic(
        self, cli_env: None, topics: Topics, kafka_bootstrap_servers: str
    ) -> None:
        """A replayed record reaches its original topic with the same key, value and headers, plus dlq.replayed.from."""
        original = payment_record(topics, "payment.completed", headers=[("trace", b"abc")])
        wrong_topic = OutboundRecord(
            topics.for_event("payment.failed"), original.key, original.value, original.headers
        )
        dead_letter(topics, kafka_bootstrap_servers, [wrong_topic])
        entry = dlq.read_entry(
            read_all({"bootstrap.servers": kafka_bootstrap_servers}, topics.dlq(GROUP))[0]
        )

        assert main(["dlq", "replay", "--group", GROUP, "--only", entry.ref]) == 0

        replayed = [
            r
            for r in read_all({"bootstrap.servers": kafka_bootstrap_servers}, wrong_topic.topic)
            if dict(r.headers).get(dlq.H_REPLAYED_FROM)
        ]
        assert len(replayed) == 1
        assert replayed[0].key == original.key
        assert replayed[0].value == original.value
        assert replayed[0].headers[0] == ("trace", b"abc")
        assert (
            dict(replayed[0].headers)[dlq.H_REPLAYED_FROM]
            == f"{topics.dlq(GROUP)}:{entry.ref}".encode()
        )
        assert not any(name.startswith("dlq.error") for name, _ in replayed[0].headers)

    def test_dry_run_and_unknown_refs_replay_nothing(
        self, cli_env: None, topics: Topics, kafka_bootstrap_servers: str
    ) -> None:
        """`--dry-run` publishes nothing, and a ref that is not in the DLQ is an error (exit 1)."""
        topic = topics.for_event("payment.refunded")
        dead_letter(topics, kafka_bootstrap_servers, [OutboundRecord(topic, b"k", b"{")])
        config = {"bootstrap.servers": kafka_bootstrap_servers}
        before = len(read_all(config, topic))

        assert main(["dlq", "replay", "--group", GROUP, "--all", "--dry-run"]) == 0
        assert main(["dlq", "replay", "--group", GROUP, "--only", "9:999"]) == 1
        assert len(read_all(config, topic)) == before


class TestSimulate:
    def test_publishes_the_seeded_stream_and_writes_expectations(
        self, cli_env: None, topics: Topics, kafka_bootstrap_servers: str, tmp_path: Path
    ) -> None:
        """`simulate` publishes exactly the generator's records for the seed and writes its expectations."""
        expectations = tmp_path / "expected.json"
        args = ["simulate", "--flows", "30", "--seed", "5", "--poison", "2", "--partitions", "3"]
        assert main([*args, "--expectations", str(expectations)]) == 0

        simulation = generate(SimulationConfig(flows=30, seed=5, poison=2, topics=topics))
        config = {"bootstrap.servers": kafka_bootstrap_servers}
        published = [r for t in topics.payment_topics for r in read_all(config, t)]
        assert sorted(r.value or b"" for r in published) == sorted(
            r.value or b"" for r in simulation.records
        )
        written = json.loads(expectations.read_text())
        assert written["valid_records"] == simulation.expected.valid_records
        assert written["total_records"] == len(simulation.records)


class TestBrokerCommand:
    @pytest.mark.parametrize("kind", ["tansu", "apache"])
    def test_broker_prints_one_bootstrap_line_serves_and_stops_on_sigterm(
        self, kind: str, broker_choice: BrokerChoice
    ) -> None:
        """`dreamscape broker` prints exactly `bootstrap=HOST:PORT` on stdout once it answers, takes a record, and exits 0 on SIGTERM with its data gone."""
        if kind == "apache" and broker_choice.kind != "apache":
            pytest.skip(f"Apache Kafka cannot run here: {broker_choice.describe()}")
        process = subprocess.Popen(
            [sys.executable, "-m", "common.cli", "broker", "--kind", kind],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # blocks until the broker is ready (or exits)
            assert re.fullmatch(r"bootstrap=127\.0\.0\.1:\d+\n", line), line
            bootstrap = line.strip().removeprefix("bootstrap=")
            topics = Topics(prefix="broker-cmd-")
            produce(bootstrap, [payment_record(topics)])
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
            assert process.stdout.read() == ""  # nothing else ever went to stdout
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        assert process.stderr is not None
        assert "data removed" in process.stderr.read()
