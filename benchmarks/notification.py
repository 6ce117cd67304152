"""Emails per second from the notification service into a local SMTP server.

    .venv/bin/python benchmarks/notification.py [--flows 3000] [--batch-size 1000]
                                                [--record-every 50] [--smtp-connections 4 8 ...]
                                                [--max-records-per-call N]
                                                [--database-url URL] [--quick] [--json PATH]

Publishes a simulated payment history (valid records only) to the embedded broker once,
starts an aiosmtpd server that accepts and discards mail in a separate process (as a real
relay would be), then, for each `--smtp-connections` value (one row each), times:

* `notification service`: the run loop with the service's handler as `build` wires it, from
  the first record received to the last one handled (the group join excluded):
  payment facts and the ledger in the database (an SQLite file of its own per row by
  default), templates rendered per email, that many SMTP sessions, each message accepted
  by the server;
* `bare smtplib`: the anchor of the emails/s figure, measured right after the service in the
  same run: the very messages the service sent (their bytes and envelopes, as it handed
  them to SMTP, recorded on the way), sent again to the same server over the
  same number of connections, one thread each, each connection kept for the whole run.
  What the service costs on top of SMTP itself is the ratio between the two.

Each row also gives the CPU seconds per email of this process (the service, or the bare
loop) and of the SMTP server in each phase, so what saturates is measured, not guessed: on
2 cores the server's share is what the service's own work must leave free.

Goal (issue 25): the service at 0.5x the bare loop or more, printed met or not (issue 13's
was 400 emails/s). `--quick` publishes 300 flows.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from unittest import mock

from prometheus_client import CollectorRegistry
from results import Result, add_arguments, describe_url, report, size
from run_loop import FAST_GROUP, time_runner

from common.handlers import ConsumerSpec
from common.kafka import KafkaProducer, create_topics
from common.logs import configure_logging
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.proxy import free_port
from notification_consumer import smtp as smtp_adapter
from notification_consumer.service import build
from notification_consumer.settings import NotificationSettings

SMTP_CONNECTIONS = NotificationSettings.model_fields["smtp_connections"].default

GOAL_RATIO = 0.5
"""The service's emails/s over the bare smtplib loop's, same messages, same run (issue 25)."""


class Sent(NamedTuple):
    """One message as the service handed it to smtplib: envelope and bytes."""

    sender: str
    recipients: Sequence[str]
    body: bytes


@contextmanager
def recording_sends() -> Iterator[list[Sent]]:
    """Every message the service hands to SMTP in this process meanwhile, in a list.

    Wraps `notification_consumer.smtp.transaction` (one list append per message, next to an
    SMTP exchange), so the bare loop can send exactly what the service sent.
    """
    sent: list[Sent] = []
    original = smtp_adapter.transaction

    def transaction(smtp: smtplib.SMTP, message: bytes, *, sender: str, recipient: str) -> None:
        original(smtp, message, sender=sender, recipient=recipient)
        sent.append(Sent(sender, [recipient], message))

    with mock.patch.object(smtp_adapter, "transaction", transaction):
        yield sent


def bare_smtp(port: int, messages: Sequence[Sent], connections: int) -> float:
    """Emails/s of plain `smtplib` sending `messages` over `connections` connections at once.

    Connecting is inside the clock, as it is for the service (which connects per batch).
    """

    def send(share: Sequence[Sent]) -> None:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
        try:
            for message in share:
                smtp.sendmail(message.sender, list(message.recipients), message.body)
        finally:
            smtp.quit()

    shares = [messages[i::connections] for i in range(connections)]
    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        for future in [pool.submit(send, share) for share in shares if share]:
            future.result()
    return len(messages) / (time.perf_counter() - started)


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


class Cpu(NamedTuple):
    """CPU seconds so far of this process and of the SMTP server's."""

    here: float
    server: float

    @classmethod
    def now(cls, server_pid: int) -> Cpu:
        return cls(time.process_time(), process_cpu(server_pid))

    def per_email(self, since: Cpu, emails: float) -> dict[str, float]:
        """Milliseconds of CPU per email since `since`: here, and in the SMTP server."""
        return {
            "here": round((self.here - since.here) / emails * 1000, 3),
            "smtp_server": round((self.server - since.server) / emails * 1000, 3),
        }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service(
    bootstrap: str, total: int, smtp_port: int, connections: int, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(records/s, emails/s, emails sent) of the notification service over `total` records."""
    overrides = {}
    if args.max_records_per_call is not None:
        overrides["max_records_per_call"] = args.max_records_per_call
    settings = NotificationSettings(
        mail_from="DreamScape <no-reply@dreamscape.test>",
        payment_retry_url="https://app.dreamscape.test/bookings/{booking_id}/pay?retry={payment_id}",
        recipient_email_template="{user_id}@example.test",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        database_url=args.database_url,
        batch_size=args.batch_size,
        record_every=args.record_every,
        smtp_connections=connections,
        kafka={"bootstrap.servers": bootstrap, **FAST_GROUP},
        **overrides,
    )
    registry = CollectorRegistry()
    spec = build(settings, registry)
    bench = ConsumerSpec(
        name="bench",
        group_id=f"bench-notification-{connections}",
        handle=spec.handle,
        transient_errors=spec.transient_errors,
        closers=spec.closers,
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


def measure(
    bootstrap: str,
    total: int,
    port: int,
    server_pid: int,
    connections: int,
    args: argparse.Namespace,
) -> Result:
    """One row: the service over `connections` SMTP sessions, then the bare loop over as many."""
    before = Cpu.now(server_pid)
    with recording_sends() as messages:
        records_rate, emails_rate, sent = service(bootstrap, total, port, connections, args)
    assert len(messages) == sent, f"{len(messages)} messages recorded, {sent:.0f} counted"
    between = Cpu.now(server_pid)
    smtp_rate = bare_smtp(port, messages, connections)
    after = Cpu.now(server_pid)
    details = {
        "emails": int(sent),
        "smtp_connections": connections,
        "flows": args.flows,
        "batch_size": args.batch_size,
        "max_records_per_call": args.max_records_per_call or "the service's default",
        "smtp_server": "aiosmtpd Sink, another process",
        "goal": "issue 25: >= 0.5x the bare smtplib loop",
        "cpu_ms_per_email_service_phase": between.per_email(before, sent),
        "cpu_ms_per_email_bare_phase": after.per_email(between, sent),
    }
    print(
        f"{connections} connection(s): CPU ms per email, service {details['cpu_ms_per_email_service_phase']}, "
        f"bare loop {details['cpu_ms_per_email_bare_phase']}",
        flush=True,
    )
    return Result(
        name=f"notification: emails accepted by a local SMTP server ({connections} connections)",
        benchmark="notification.py",
        events_per_s=emails_rate,
        unit="emails/s",
        anchor=f"bare smtplib, the same messages over {connections} connections",
        anchor_events_per_s=smtp_rate,
        records=total,
        database=describe_url(args.database_url),
        goal_ratio=GOAL_RATIO,
        references={"records through the service": records_rate},
        details=details,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=None, help="3,000")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--record-every", type=int, default=50)
    parser.add_argument(
        "--smtp-connections",
        type=int,
        nargs="+",
        default=[SMTP_CONNECTIONS],
        help=f"one row each (default: the service's default, {SMTP_CONNECTIONS})",
    )
    parser.add_argument(
        "--max-records-per-call", type=int, default=None, help="default: the service's"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: an SQLite file per row in a temporary directory",
    )
    add_arguments(parser)
    args = parser.parse_args()
    if args.database_url and len(args.smtp_connections) > 1:
        parser.error(
            "one --smtp-connections value with --database-url (each row needs its own ledger)"
        )
    args.flows = size(args.flows, args.quick, 3000, 300)
    configure_logging(level="WARNING", fmt="json", service="bench")
    given_url = args.database_url
    results = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        sink, port = smtp_sink()
        try:
            total, expected = publish(broker.bootstrap_servers, args.flows)
            print(f"{total} records published ({args.flows} flows; expected emails {expected})")
            for connections in args.smtp_connections:
                args.database_url = (
                    given_url or f"sqlite:///{Path(tmp) / f'notification-{connections}.db'}"
                )
                bootstrap = broker.bootstrap_servers
                results.append(measure(bootstrap, total, port, sink.pid, connections, args))
        finally:
            sink.terminate()
            sink.wait(10)
    report(results, args.json)


if __name__ == "__main__":
    main()
