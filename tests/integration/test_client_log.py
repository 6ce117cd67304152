"""librdkafka's log against an unreachable broker: bounded lines, and the cause remembered.

No broker is needed: a localhost port bound but never listening refuses every connection.
The clients are polled the way the run loop polls them (the consumer's batch poll, the DLQ
producer's check between polls), a fixed number of times, and the log lines counted.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from common.kafka import KafkaConsumer, KafkaProducer, RebalanceListener
from common.kafka.client import client_log
from dreamscape_dev.testing.running import wait_until
from tests.deploy.observability import metrics_port
from tests.integration.helpers import readyz, service_process

POLLS = 60
POLL_TIMEOUT_S = 0.1


class TestUnreachableBroker:
    def test_an_unreachable_broker_logs_a_bounded_number_of_lines(
        self, closed_port: int, librdkafka_lines: list[str]
    ) -> None:
        """A consumer and a DLQ producer polled 60 times (6 s) against a closed port log fewer than 10 lines, where librdkafka alone logs about 20 a second."""
        bootstrap = f"127.0.0.1:{closed_port}"
        consumer = KafkaConsumer(
            {"bootstrap.servers": bootstrap, "group.id": "flood"}, RebalanceListener()
        )
        producer = KafkaProducer({"bootstrap.servers": bootstrap}, name="DLQ producer")
        consumer.subscribe(["dreamscape.payment.completed"])
        try:
            for _ in range(POLLS):
                consumer.poll_batch(100, POLL_TIMEOUT_S)
                producer.check()
        finally:
            consumer.close()
        assert any("Connection refused" in text for text in librdkafka_lines), librdkafka_lines
        assert len(librdkafka_lines) < 10, "\n".join(librdkafka_lines)

    def test_the_cause_of_the_last_client_error_is_broker_unreachable(
        self, closed_port: int, librdkafka_lines: list[str]
    ) -> None:
        """After a few polls against a closed port, the client log names the cause "broker unreachable"."""
        consumer = KafkaConsumer(
            {"bootstrap.servers": f"127.0.0.1:{closed_port}", "group.id": "cause"},
            RebalanceListener(),
        )
        consumer.subscribe(["dreamscape.payment.completed"])
        try:
            for _ in range(20):
                consumer.poll_batch(100, POLL_TIMEOUT_S)
                if client_log.cause() is not None:
                    break
        finally:
            consumer.close()
        assert client_log.cause() == "broker unreachable"


class TestServiceProcess:
    def test_readyz_names_an_unreachable_broker_and_the_log_stays_short(
        self, closed_port: int, tmp_path: Path
    ) -> None:
        """A service pointed at a closed port says "waiting for assignment: broker unreachable" in /readyz, its log a handful of lines, no host in the body."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port}",
            HTTP_HOST="127.0.0.1",
            HTTP_PORT="0",
            LOG_FORMAT="json",
            POLL_TIMEOUT_SECONDS="0.1",
            PYTHONUNBUFFERED="1",
            EVENT_LOG_PATH=str(tmp_path / "events.jsonl"),
        )
        with service_process("examples.event_log", env, tmp_path) as service:
            port = metrics_port(service)
            wanted = "waiting for assignment: broker unreachable"
            wait_until(
                lambda: readyz(port)[1]["checks"]["partitions_assigned"] == wanted,
                30.0,
                "/readyz naming the cause",
                abort=service.died,
            )
            body = json.dumps(readyz(port)[1])
            service.signal(signal.SIGTERM)
            assert service.wait(30.0) == 0
        assert str(closed_port) not in body
        lines = service.output.read_text(errors="replace").splitlines()
        assert len(lines) < 12, "\n".join(lines)
