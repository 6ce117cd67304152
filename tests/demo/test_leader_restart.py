"""The three services on a three-node Apache Kafka cluster while a partition leader is killed.

The demo (`python -m dreamscape_dev.demo`) runs voyage, notification and analytics as separate
processes over a simulated stream and judges the outcome by the simulator's own figures:
every booking's status, receipts and refunds exactly as expected, the notification ledger
equal to the emails received, each poison record once in each group's DLQ, the analytics
counts and revenue exact. Here it runs against a private cluster (replication factor 3,
`min.insync.replicas=2`) while the test SIGKILLs the leader of a payment partition mid-stream
and restarts it. Passing means nothing was lost and nothing was applied twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from common.errors import TransientError
from common.kafka import GroupOffsets
from common.records import TopicPartition
from common.topics import GROUP_NOTIFICATION, GROUP_VOYAGE
from dreamscape_dev.demo.run import simulation_config
from dreamscape_dev.simulator import generate
from dreamscape_dev.testing.apache_kafka import ApacheKafka
from dreamscape_dev.testing.running import wait_until
from tests.demo.support import ROOT, demo_command

pytestmark = pytest.mark.integration

FLOWS = 3000
SEED = 11
PARTITIONS = 6


def _committed_once_answered(offsets: GroupOffsets, partitions: list[TopicPartition]) -> int:
    """The group's committed total, asked until its coordinator answers.

    The killed broker may have been the group's coordinator: until another takes over, the
    question fails at once with NOT_COORDINATOR. A total read after the kill is at least the
    one at the kill, so "below the stream's size" still proves the kill came mid-stream.
    """
    asking = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_delay(60),
        wait=wait_fixed(0.5),
        reraise=True,
    )
    return sum(asking(offsets.read, partitions, timeout_s=5).values())


def _demo_topic(admin: AdminClient, suffix: str) -> str | None:
    """The demo's prefixed topic ending in `suffix`, once it exists."""
    names = [
        t
        for t in admin.list_topics(timeout=5).topics
        if re.fullmatch(rf"demo-\w+-{re.escape(suffix)}", t)
    ]
    return names[0] if names else None


def test_a_partition_leader_killed_and_restarted_mid_stream_loses_and_doubles_nothing(
    kafka_cluster: ApacheKafka, tmp_path: Path
) -> None:
    """With the leader of a payment partition SIGKILLed while the three services consume, and restarted, the demo's checks all pass: nothing lost, nothing applied twice."""
    total = generate(simulation_config(FLOWS, SEED)).expected.total_records
    bootstrap = kafka_cluster.bootstrap_servers
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            demo_command(flows=FLOWS, seed=SEED, timeout_s=120, output=tmp_path / "out"),
            cwd=ROOT,
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    offsets = GroupOffsets({"bootstrap.servers": bootstrap}, GROUP_VOYAGE)
    # The slowest consumer (it sends an email per payment): still busy when the leader dies.
    slowest = GroupOffsets({"bootstrap.servers": bootstrap}, GROUP_NOTIFICATION)
    try:
        wait_until(
            lambda: _demo_topic(admin, "dreamscape.payment.completed"), 60, "the demo's topics"
        )
        topic = _demo_topic(admin, "dreamscape.payment.completed")
        assert topic is not None
        prefix = topic.removesuffix("dreamscape.payment.completed")
        partitions = [
            TopicPartition(f"{prefix}dreamscape.payment.{kind}", p)
            for kind in ("initiated", "completed", "failed", "refunded")
            for p in range(PARTITIONS)
        ]
        wait_until(
            lambda: sum(offsets.read(partitions).values()) > 0,
            60,
            "voyage to commit its first offsets",
        )
        leader = kafka_cluster.leader_of(topic, 0)
        kafka_cluster.stop_node(leader, signal.SIGKILL)
        committed_at_kill = _committed_once_answered(slowest, partitions)
        wait_until(
            lambda: kafka_cluster.leader_of(topic, 0) not in (leader, -1),
            30,
            "a new leader for the partition",
        )
        kafka_cluster.start_node(leader)
        demo.wait(timeout=180)
    finally:
        offsets.close()
        slowest.close()
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = log.read_text()
    assert committed_at_kill < total, "the stream was consumed before the kill: nothing was tested"
    assert demo.returncode == 0, output
    assert "demo OK" in output
    assert not re.search(r"^\s+FAIL", output, re.MULTILINE), output
