"""librdkafka's log against a broker that refuses the client: bounded lines, a named cause.

On the secured broker (SASL_SSL, its own throw-away CA): a wrong password and a CA that did
not sign the broker's certificate. The clients are polled the way the run loop polls them, a
fixed number of times, and the log lines counted; a real service says the cause in /readyz.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.kafka import KafkaConsumer, KafkaProducer, RebalanceListener
from dreamscape_dev.testing.broker import SecuredBroker
from dreamscape_dev.testing.running import wait_until
from tests.deploy.observability import metrics_port
from tests.integration.helpers import readyz, service_process

pytestmark = pytest.mark.integration

POLLS = 60
POLL_TIMEOUT_S = 0.1
#: A CA bundle that did not sign the test broker's certificate.
OTHER_CA = "/etc/ssl/certs/ca-certificates.crt"


def refused(broker: SecuredBroker, how: str) -> dict[str, str]:
    """The operator's client config, made wrong in one way: `password` or `ca`."""
    if how == "password":
        return broker.client_config("operator", password="wrong")
    return {**broker.client_config("operator"), "ssl.ca.location": OTHER_CA}


def poll_like_the_loop(config: dict[str, str]) -> None:
    consumer = KafkaConsumer({**config, "group.id": "refused"}, RebalanceListener())
    producer = KafkaProducer(config, name="DLQ producer")
    consumer.subscribe(["dreamscape.payment.completed"])
    try:
        for _ in range(POLLS):
            consumer.poll_batch(100, POLL_TIMEOUT_S)
            producer.check()
    finally:
        consumer.close()


CAUSES = {"password": "authentication failed", "ca": "SSL handshake failed"}


class TestRefusedClients:
    @pytest.mark.parametrize("how", ["password", "ca"])
    def test_a_refused_client_logs_a_bounded_number_of_lines(
        self, secured_kafka: SecuredBroker, librdkafka_lines: list[str], how: str
    ) -> None:
        """A consumer and a DLQ producer refused by the broker (wrong password, wrong CA), polled 60 times (6 s), log fewer than 10 lines naming the failure."""
        poll_like_the_loop(refused(secured_kafka, how))
        assert librdkafka_lines, "the refusal was not logged at all"
        assert len(librdkafka_lines) < 10, "\n".join(librdkafka_lines)

    @pytest.mark.parametrize("how", ["password", "ca"])
    def test_readyz_names_why_the_broker_refused_the_service(
        self, secured_kafka: SecuredBroker, tmp_path: Path, how: str
    ) -> None:
        """A service with a wrong password says "authentication failed", with a wrong CA "SSL handshake failed", in /readyz while unassigned."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update(secured_kafka.env("operator", password="wrong" if how == "password" else None))
        if how == "ca":
            env["KAFKA_SSL_CA_LOCATION"] = OTHER_CA
        env.update(
            HTTP_HOST="127.0.0.1",
            HTTP_PORT="0",
            LOG_FORMAT="json",
            POLL_TIMEOUT_SECONDS="0.1",
            PYTHONUNBUFFERED="1",
            EVENT_LOG_PATH=str(tmp_path / "events.jsonl"),
        )
        with service_process("examples.event_log", env, tmp_path) as service:
            port = metrics_port(service)
            wanted = f"waiting for assignment: {CAUSES[how]}"
            wait_until(
                lambda: readyz(port)[1]["checks"]["partitions_assigned"] == wanted,
                30.0,
                f"/readyz saying {wanted!r}",
                abort=service.died,
            )
