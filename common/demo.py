"""`make demo`: the stream end to end on an embedded broker, with nothing but Python.

Starts the embedded Kafka-compatible broker, publishes a simulated history (failures,
retried bookings, refunds, duplicates, cross-topic reordering and a few poison records),
runs the minimal `event_log` consumer built on `common` as a separate process, shows it
catching up, prints what it saw and what went to the dead-letter queue, and stops it with
SIGTERM. Exits non-zero if the consumer died or did not catch up in time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import dlq
from common.kafka import KafkaProducer, create_topics, read_all
from common.simulator import SimulationConfig, generate
from common.testing.broker import EmbeddedBroker
from common.topics import DEFAULT_TOPICS

OUTPUT = Path("demo-output")
_RETURN, _END = ("\r", "") if sys.stdout.isatty() else ("", "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to catch up")
    args = parser.parse_args(argv)
    OUTPUT.mkdir(exist_ok=True)
    log_path = OUTPUT / "event-log.jsonl"
    log_path.unlink(missing_ok=True)
    with EmbeddedBroker() as broker:
        print(f"embedded broker on {broker.bootstrap_servers}")
        expected = _publish(broker.bootstrap_servers, args.flows, args.seed)
        consumer = _start_consumer(broker.bootstrap_servers, log_path)
        try:
            caught_up = _follow(consumer, log_path, expected, args.timeout)
        finally:
            code = _stop(consumer)
        _summary(broker.bootstrap_servers, log_path)
    if not caught_up or code != 0:
        print(f"demo FAILED: caught_up={caught_up} consumer exit code={code}", file=sys.stderr)
        return 1
    print("demo OK: every valid record consumed once or more, every poison record dead-lettered")
    return 0


def _publish(bootstrap: str, flows: int, seed: int) -> int:
    config = SimulationConfig(
        flows=flows, seed=seed, duplicate_rate=0.02, reorder_rate=0.1, poison=10
    )
    simulation = generate(config)
    create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=6)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.send(simulation.records)
    if producer.flush(60):
        raise SystemExit("demo: the broker did not acknowledge every simulated record")
    exp = simulation.expected
    print(
        f"published {exp.total_records} records for {flows} flows "
        f"({exp.valid_records} valid incl. {exp.duplicates} duplicates, "
        f"{exp.total_records - exp.valid_records} poison)"
    )
    return exp.valid_records


def _start_consumer(bootstrap: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SESSION_TIMEOUT_MS": "1000",  # the embedded broker's first join waits for it
        "KAFKA_HEARTBEAT_INTERVAL_MS": "100",
        "EVENT_LOG_PATH": str(log_path),
        "EVENT_LOG_GROUP": "demo-event-log",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "console",
    }
    return subprocess.Popen([sys.executable, "-m", "common.examples.event_log"], env=env)


def _follow(
    consumer: subprocess.Popen[bytes], log_path: Path, expected: int, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline and consumer.poll() is None:
        seen = _count_lines(log_path)
        print(f"{_RETURN}  consumed {seen:6d} / {expected} valid records", end=_END, flush=True)
        if seen >= expected:
            break
        time.sleep(0.25)  # progress display cadence, not a synchronisation
    print()
    return seen >= expected


def _stop(consumer: subprocess.Popen[bytes]) -> int:
    if consumer.poll() is None:
        consumer.send_signal(signal.SIGTERM)
    try:
        return consumer.wait(15)
    except subprocess.TimeoutExpired:
        consumer.kill()
        return -9


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def _summary(bootstrap: str, log_path: Path) -> None:
    lines = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
    by_type = Counter(x["event_type"] for x in lines)
    distinct = len({x["event_id"] for x in lines})
    print(f"\nevents consumed: {len(lines)} ({distinct} distinct eventIds)")
    for event_type, count in sorted(by_type.items()):
        print(f"  {event_type:20s} {count:6d}")
    entries = [
        dlq.read_entry(r)
        for r in read_all({"bootstrap.servers": bootstrap}, DEFAULT_TOPICS.dlq("demo-event-log"))
    ]
    print(f"dead-lettered: {len(entries)}")
    for reason, count in Counter(e.error_type for e in entries).most_common():
        print(f"  {reason:20s} {count:6d}")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
