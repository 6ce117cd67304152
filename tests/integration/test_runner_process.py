"""The run loop as a real process: crash and restart, SIGTERM, and invalid configuration.

Consumers run as `python -m examples.event_log` (or its crashing twin,
`tests.integration.crash_consumer`) against the real broker, configured only through the
environment, exactly as in production. What they did is read back from the event log they
append to (one fsync'd JSON line per handled event) and from the group's committed offsets.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from common.records import TopicPartition
from common.topics import Topics
from tests.integration.helpers import (
    ROOT,
    committed_offsets,
    event_id,
    kill_mid_batch,
    logged,
    logged_ids,
    next_offsets,
    payment_record,
    payment_records,
    process_env,
    produce,
    service_process,
    wait_until,
)

pytestmark = pytest.mark.integration

EVENT_LOG = "examples.event_log"
CRASH_CONSUMER = "tests.integration.crash_consumer"
TIMEOUT_S = 30.0


def _all_partitions(topics: Topics) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in topics.payment_topics for p in range(3)]


class TestCrash:
    def test_a_consumer_killed_mid_batch_loses_nothing_after_a_restart(
        self, kafka_bootstrap_servers: str, topics: Topics, tmp_path: Path, group_protocol: str
    ) -> None:
        """A consumer SIGKILLed inside its handler mid-batch, restarted in the same group, ends with every produced eventId in its log, redelivering exactly what it had done past its committed offsets (both group protocols)."""
        records = payment_records(topics, 300)
        delivered = produce(kafka_bootstrap_servers, records)
        produced = {event_id(r) for r in records}
        log, marker = tmp_path / "events.jsonl", tmp_path / "crashed"
        group = f"crash-{uuid.uuid4().hex[:8]}"
        env = process_env(
            kafka_bootstrap_servers,
            topics,
            EVENT_LOG_PATH=str(log),
            KAFKA_GROUP_ID=group,
            BATCH_SIZE="25",
            KAFKA_AUTO_COMMIT_INTERVAL_MS="100",
            KAFKA_FETCH_WAIT_MAX_MS="50",
            KAFKA_GROUP_PROTOCOL=group_protocol,
        )

        crash = {"CRASH_AFTER": "120", "CRASH_MARKER_PATH": str(marker)}
        kill_mid_batch(CRASH_CONSUMER, env | crash, tmp_path, marker, TIMEOUT_S)
        before_restart = logged(log)
        assert len(before_restart) == 120
        committed = committed_offsets(kafka_bootstrap_servers, group, _all_partitions(topics))
        at_kill = {tp: max(offset, 0) for tp, offset in committed.items()}  # none yet: -1001

        ends = next_offsets(delivered)

        def read_to_the_end() -> bool:
            """The group committed the end of every partition: the restarted member handled
            everything from where it resumed, so what it owed again is logged. (Every eventId
            in the log is not enough: most were logged before the kill.)"""
            now = committed_offsets(kafka_bootstrap_servers, group, list(ends))
            return all(now.get(tp) == end for tp, end in ends.items())

        with service_process(EVENT_LOG, env, tmp_path) as restarted:
            wait_until(
                read_to_the_end,
                TIMEOUT_S,
                "the restarted member at the end of every partition",
                abort=restarted.died,
            )
            restarted.signal(signal.SIGTERM)
            assert restarted.wait(10) == 0

        # Where the restarted member began on each partition: the group's committed offset
        # when it joined. Read from what it logged rather than from the broker right after
        # the kill, because on Apache Kafka an OffsetCommit in flight at the kill can still
        # land after that read (committed offsets only ever move forward).
        after_restart = logged(log)[len(before_restart) :]
        start = dict(ends)
        for entry in after_restart:
            tp = TopicPartition(entry["topic"], entry["partition"])
            start[tp] = min(start[tp], entry["offset"])
        assert all(start[tp] >= at_kill.get(tp, 0) for tp in ends), "a committed offset went back"
        logged_before = {entry["event_id"] for entry in before_restart}
        for record, where in zip(records, delivered, strict=True):
            if where.offset < start[where.tp]:
                assert event_id(record) in logged_before, (
                    "an offset was committed before its effect"
                )
        to_redeliver = {
            entry["event_id"]
            for entry in before_restart
            if entry["offset"] >= start[TopicPartition(entry["topic"], entry["partition"])]
        }

        counts = Counter(logged_ids(log))
        assert set(counts) == produced
        redelivered = {i for i, n in counts.items() if n > 1}
        print(
            f"\ncrash test: {sum(counts.values())} lines for {len(produced)} events, "
            f"{len(redelivered)} redelivered, {sum(at_kill.values())} offsets committed at the kill"
        )
        assert max(counts.values()) == 2
        assert len(to_redeliver) >= 1, "the record in hand at the kill was committed"
        assert redelivered == to_redeliver


class TestShutdown:
    def test_sigterm_exits_cleanly_and_commits_everything_handled(
        self, kafka_bootstrap_servers: str, topics: Topics, tmp_path: Path, group_protocol: str
    ) -> None:
        """SIGTERM makes event_log exit 0 within SHUTDOWN_TIMEOUT_SECONDS having committed every handled offset, so a restart in the same group handles nothing twice (both group protocols)."""
        records = payment_records(topics, 60)
        delivered = produce(kafka_bootstrap_servers, records)
        log = tmp_path / "events.jsonl"
        group = f"shutdown-{uuid.uuid4().hex[:8]}"
        shutdown_timeout_s = 5.0
        env = process_env(
            kafka_bootstrap_servers,
            topics,
            EVENT_LOG_PATH=str(log),
            KAFKA_GROUP_ID=group,
            SHUTDOWN_TIMEOUT_SECONDS=str(shutdown_timeout_s),
            KAFKA_ENABLE_AUTO_COMMIT="false",  # only the shutdown commit can save the offsets
            KAFKA_FETCH_WAIT_MAX_MS="50",
            KAFKA_GROUP_PROTOCOL=group_protocol,
        )

        with service_process(EVENT_LOG, env, tmp_path) as first:
            wanted = {event_id(r) for r in records}
            wait_until(
                lambda: wanted <= set(logged_ids(log)),
                TIMEOUT_S,
                "every record in the log",
                abort=first.died,
            )
            started = time.monotonic()
            first.signal(signal.SIGTERM)
            assert first.wait(shutdown_timeout_s) == 0, first.tail()
            assert time.monotonic() - started < shutdown_timeout_s

        partitions = [tp for tp in next_offsets(delivered)]
        committed = committed_offsets(kafka_bootstrap_servers, group, partitions)
        assert committed == next_offsets(delivered)

        sentinel = payment_record(topics, "payment.completed")
        produce(kafka_bootstrap_servers, [sentinel])
        with service_process(EVENT_LOG, env, tmp_path) as second:
            wait_until(
                lambda: event_id(sentinel) in logged_ids(log),
                TIMEOUT_S,
                "the sentinel record in the log",
                abort=second.died,
            )
            second.signal(signal.SIGTERM)
            assert second.wait(shutdown_timeout_s) == 0, second.tail()

        counts = Counter(logged_ids(log))
        assert set(counts) == wanted | {event_id(sentinel)}
        assert [i for i, n in counts.items() if n > 1] == []


class TestFatalClientErrors:
    def test_a_fenced_static_member_exits_1_with_one_line_naming_the_cause(
        self, kafka_bootstrap_servers: str, topics: Topics, tmp_path: Path
    ) -> None:
        """A second event_log with the first's KAFKA_GROUP_INSTANCE_ID fences it: the first exits 1 on its own, one log line naming FENCED_INSTANCE_ID and no traceback, so an orchestrator restarts it (issue 22, finding 4)."""
        group = f"fenced-{uuid.uuid4().hex[:8]}"
        env = process_env(
            kafka_bootstrap_servers,
            topics,
            EVENT_LOG_PATH=str(tmp_path / "events.jsonl"),
            KAFKA_GROUP_ID=group,
            KAFKA_GROUP_PROTOCOL="classic",
            KAFKA_GROUP_INSTANCE_ID=f"static-{group}",
            LOG_LEVEL="INFO",
        )

        with service_process(EVENT_LOG, env, tmp_path) as first:
            wait_until(
                lambda: "partitions.changed" in first.output.read_text(errors="replace"),
                TIMEOUT_S,
                "the first member to be assigned partitions",
                abort=first.died,
            )
            with service_process(EVENT_LOG, env, tmp_path) as second:
                assert first.wait(TIMEOUT_S) == 1
                second.signal(signal.SIGTERM)
                assert second.wait(10) == 0

        lines = first.output.read_text(errors="replace").splitlines()
        naming = [line for line in lines if "FENCED_INSTANCE_ID" in line]
        assert len(naming) == 1, "\n".join(lines)
        assert '"consumer.error"' in naming[0]
        assert not any("Traceback" in line for line in lines)


class TestInvalidConfiguration:
    @pytest.mark.parametrize(
        ("variable", "value", "named"),
        [
            ("BATCH_SIZE", "abc", "BATCH_SIZE"),
            ("KAFKA_NO_SUCH_PROPERTY", "1", "no.such.property"),
            ("KAFKA_ENABLE_AUTO_OFFSET_STORE", "true", "KAFKA_ENABLE_AUTO_OFFSET_STORE"),
        ],
    )
    def test_invalid_configuration_exits_2_with_one_line_and_no_traceback(
        self,
        kafka_bootstrap_servers: str,
        topics: Topics,
        tmp_path: Path,
        variable: str,
        value: str,
        named: str,
    ) -> None:
        """A bad setting makes event_log exit 2 at start-up with one stderr line naming it and no traceback."""
        env = process_env(
            kafka_bootstrap_servers,
            topics,
            EVENT_LOG_PATH=str(tmp_path / "events.jsonl"),
            **{variable: value},
        )
        done = subprocess.run(
            [sys.executable, "-m", EVENT_LOG],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert named in done.stderr
