"""Emails per second from the notification service into a local SMTP server.

    .venv/bin/python benchmarks/notification.py [--flows 3000] [--batch-size 1000]
                                                [--record-every 50] [--smtp-connections 4]
                                                [--database-url URL]

Publishes a simulated payment history (valid records only) to the embedded broker once,
starts an aiosmtpd server that accepts and discards mail in a separate process (as a real
relay would be), then reads the records twice, each time with a fresh consumer group,
timing from the first record received to the last one handled (the group join excluded):

* `bare consume()`: `Consumer.consume(1000)` and nothing else, the ceiling of the machine;
* `notification service`: the run loop with the service's handler as `build` wires it:
  payment facts and the ledger in the database (SQLite file by default), templates
  rendered per email, one SMTP connection per batch, each message accepted by the server.

Prints records/s for both, and emails/s (accepted by the server) for the service. The
goal is 300 emails/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from run_loop import FAST_GROUP, bare, time_runner

from common.handlers import ConsumerSpec
from common.kafka import KafkaProducer, create_topics
from common.logs import configure_logging
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.proxy import free_port
from notification_consumer.service import build
from notification_consumer.settings import NotificationSettings


def publish(bootstrap: str, flows: int) -> tuple[int, dict[str, int]]:
    create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=6)
    simulation = generate(SimulationConfig(flows=flows, seed=42))
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
    producer.send(simulation.records)
    producer.flush(120)
    return len(simulation.records), simulation.expected.emails_by_kind


def smtp_sink() -> tuple[subprocess.Popen[bytes], int]:
    """An aiosmtpd process that accepts and discards every message; returns once it listens."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the SMTP sink did not start")


def service(
    bootstrap: str, total: int, smtp_port: int, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(records/s, emails/s, emails sent) of the notification service over `total` records."""
    settings = NotificationSettings(
        mail_from="DreamScape <no-reply@dreamscape.test>",
        payment_retry_url="https://app.dreamscape.test/bookings/{booking_id}/pay?retry={payment_id}",
        recipient_email_template="{user_id}@example.test",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        database_url=args.database_url,
        batch_size=args.batch_size,
        record_every=args.record_every,
        smtp_connections=args.smtp_connections,
        kafka={"bootstrap.servers": bootstrap, **FAST_GROUP},
    )
    registry = CollectorRegistry()
    spec = build(settings, registry)
    bench = ConsumerSpec(
        name="bench",
        group_id="bench-notification",
        handle=spec.handle,
        transient_errors=spec.transient_errors,
    )
    records_rate = time_runner(bench, settings, total)
    sent = sum(
        registry.get_sample_value(
            "dreamscape_notification_emails_total", {"kind": k, "outcome": "sent"}
        )
        or 0.0
        for k in ("receipt", "payment_failed", "refund")
    )
    return records_rate, sent / total * records_rate, sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--record-every", type=int, default=50)
    parser.add_argument("--smtp-connections", type=int, default=4)
    parser.add_argument(
        "--database-url", default=None, help="default: an SQLite file in a temporary directory"
    )
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="json", service="bench")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        args.database_url = args.database_url or f"sqlite:///{Path(tmp) / 'notification.db'}"
        sink, port = smtp_sink()
        try:
            total, expected = publish(broker.bootstrap_servers, args.flows)
            print(f"{total} records published ({args.flows} flows; expected emails {expected})")
            bare_rate = bare(broker.bootstrap_servers, total, "bench-bare", decode=False)
            records_rate, emails_rate, sent = service(broker.bootstrap_servers, total, port, args)
        finally:
            sink.terminate()
            sink.wait(10)
    print(f"{'bare consume()':58s} {bare_rate:12,.0f} records/s")
    print(f"{'notification service (DB + templates + SMTP)':58s} {records_rate:12,.0f} records/s")
    print(
        f"{'notification service, emails accepted by the SMTP server':58s} {emails_rate:12,.0f} emails/s  ({sent:.0f} emails)"
    )
    print(
        f"goal 300 emails/s: {'met' if emails_rate >= 300 else 'NOT met'}   "
        f"database: {args.database_url.split(':')[0]}   SMTP connections: {args.smtp_connections}"
    )


if __name__ == "__main__":
    main()
