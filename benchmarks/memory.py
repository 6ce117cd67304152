"""Resident memory of each service, as a process, after it has handled about 100,000 events.

    .venv/bin/python benchmarks/memory.py [--records 100000] [--notification-records 20000]
                                          [--quick] [--json PATH]

So an operator can size a pod's memory request: what a service holds once it has been
working for a while, not what it needs to start. Memory is a property of a whole process
(the interpreter, imported modules, librdkafka's buffers and threads, SQLite's page cache,
the allocators' arenas), and one benchmark process holding several services would mix all
of them in one figure. So each service runs as it is deployed, `python -m <package>`
configured by environment, on an SQLite file of its own, with the machinery of
`benchmarks/soak.py` (its process handle, `/readyz` and `/metrics` readers, and the local
SMTP server that accepts and discards the notification service's mail).

Beside them, as the anchor of every row, a process running the same runtime
(`common.service.run_service`: the run loop, health server, logging and metrics) with a
no-op handler: what any consumer on this runtime holds. Its own row's anchor is a bare
`python -c` interpreter, so the runtime's share shows too.

All of them start at once, on one embedded broker. Once each answers `/readyz`, its RSS
is read (start-up, before the first record: the services are started before anything is
published so that this reading is exact), then the mixed stream of `voyage.py` (2 %
duplicates, 10 % reordered) is published at full speed. Each process is read again when
`dreamscape_consumer_records_total` (handled and dead-lettered) says it has finished the
whole stream, and stopped then: `VmRSS` (the row's figure, in MB) and `VmHWM` (its peak)
from `/proc/<pid>/status`. The notification service sends one email per completed, failed
or refunded fact, about one per two records, at a few hundred per second: it is read after
`--notification-records` (20,000) records instead, which its row's `records` says.

Issue 25 sets no goal: these figures are for sizing; `make soak` watches growth over a long
run. `--quick` publishes about 10,000 records (and lets notification handle them all).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from results import Result, add_arguments, describe_url, report, size
from soak import Watched, discarding_smtp, start_service, wait_ready
from voyage import publish

from common.kafka import create_topics
from common.logs import configure_logging
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.demo.orchestra import (
    SERVICES,
    TANSU_FAST_JOIN,
    ServiceDef,
    ServiceProcess,
    service_env,
    stop_all,
)
from dreamscape_dev.demo.run import NOTIFICATION_ENV
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.proxy import free_port

PARTITIONS: Final = 6
POLL_S: Final = 0.25
TIMEOUT_S: Final = 600.0
NOOP: Final = ServiceDef("no-op run loop", "bench_noop", "bench-noop")
ANCHOR: Final = "run loop, no-op handler (process), same run"

NOOP_SERVICE: Final = """
from common.handlers import ConsumerSpec
from common.service import run_service
from common.settings import RunnerSettings
def build(settings, registry):
    group = settings.group_id("bench-noop")
    return ConsumerSpec(name="bench-noop", group_id=group, handle=lambda batch: None)
raise SystemExit(run_service(RunnerSettings, build, service="bench-noop"))
"""
"""The anchor process, `python -c NOOP_SERVICE`: a service whose handler does nothing, so it
imports only the runtime, as a service's process does, and none of this benchmark."""

BARE_INTERPRETER: Final = "print(open('/proc/self/status').read())"


def status_kb(pid: int) -> dict[str, int]:
    """`VmRSS` and `VmHWM` (peak RSS) of process `pid`, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def bare_interpreter_kb() -> int:
    """VmRSS of a bare `python -c` of this venv: the floor under the anchor."""
    output = subprocess.run(
        [sys.executable, "-c", BARE_INTERPRETER], capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1])


@dataclass
class Measured:
    """One process: its target, its reading at start-up and when it reached the target."""

    watched: Watched
    database_url: str | None
    target: int = 0
    start_kb: int = 0
    end_kb: int = 0
    hwm_kb: int = 0
    handled: int = 0
    emails: int | None = None

    @property
    def name(self) -> str:
        return self.watched.name

    @property
    def pid(self) -> int:
        return self.watched.process.process.pid


def start_noop(env: dict[str, str], logs: Path) -> Watched:
    """The anchor process, with its own `/metrics` and `/readyz` like a service."""
    port = free_port()
    log = logs / "noop.log"
    logs.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", NOOP_SERVICE],
            env={**env, "HTTP_PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Watched(ServiceProcess(NOOP, process, log), port)


@contextmanager
def started(bootstrap: str, data: Path, smtp: tuple[str, int]) -> Iterator[list[Measured]]:
    """The three services and the anchor, each a process on its own SQLite file; stopped after."""
    extra = dict(TANSU_FAST_JOIN)
    measured: list[Measured] = []
    try:
        for definition in SERVICES:
            service_extra = dict(extra)
            if definition.name == "notification":
                service_extra |= {**NOTIFICATION_ENV, "SMTP_HOST": smtp[0]}
                service_extra["SMTP_PORT"] = str(smtp[1])
            url = f"sqlite:///{data / definition.name}.db"
            env = service_env(bootstrap, url, service_extra)
            watched = start_service(definition, env, data, None)
            measured.append(Measured(watched, url))
        env = service_env(bootstrap, f"sqlite:///{data / 'noop'}.db", extra)
        measured.append(Measured(start_noop(env, data / "logs"), None))
        yield measured
    finally:
        stop_all([m.watched.process for m in measured])


def follow(measured: Sequence[Measured], accepted: Callable[[], int]) -> None:
    """Read each process once it reached its target, then stop it; raise if one died."""
    deadline = time.monotonic() + TIMEOUT_S
    waiting = list(measured)
    while waiting:
        for one in list(waiting):
            process = one.watched.process
            if (code := process.exit_code()) is not None:
                raise RuntimeError(f"{one.name} exited {code}:\n{process.tail()}")
            handled = one.watched.handled()
            if handled >= one.target:
                status = status_kb(one.pid)  # first, before anything else can move it
                one.end_kb, one.hwm_kb, one.handled = status["VmRSS"], status["VmHWM"], handled
                if one.name == "notification":
                    one.emails = accepted()
                process.terminate()  # its CPU is the others' now
                waiting.remove(one)
                print(
                    f"  {one.name}: {handled:,} events, RSS {one.start_kb / 1024:.1f} MB at "
                    f"start-up -> {one.end_kb / 1024:.1f} MB (peak {one.hwm_kb / 1024:.1f} MB)",
                    flush=True,
                )
        if time.monotonic() > deadline:
            raise RuntimeError(f"not done after {TIMEOUT_S:.0f} s: {[m.name for m in waiting]}")
        time.sleep(POLL_S)  # the next look at /metrics; the loop polls a condition


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


def results_of(measured: Sequence[Measured], bare_kb: int, published: int) -> list[Result]:
    """One row per service against the anchor's RSS, and the anchor's against the interpreter."""
    anchor = next(m for m in measured if m.name == NOOP.name)
    rows = []
    for one in measured:
        is_anchor = one is anchor
        details: dict[str, object] = {
            "vmhwm_mb": mb(one.hwm_kb),
            "start_rss_mb": mb(one.start_kb),
            "growth_mb": mb(one.end_kb - one.start_kb),
            "published": published,
            "rss_of": "VmRSS of the process, read when it had handled `records` events",
        }
        if one.emails is not None:
            details["emails_accepted"] = one.emails
        rows.append(
            Result(
                name=f"memory: {one.name}"
                + (" on SQLite" if one.database_url else "")
                + f", after {one.handled:,} events",
                benchmark="memory.py",
                events_per_s=one.end_kb / 1024,
                unit="MB",
                anchor="bare python -c (interpreter alone)" if is_anchor else ANCHOR,
                anchor_events_per_s=(bare_kb if is_anchor else anchor.end_kb) / 1024,
                records=one.handled,
                database=describe_url(one.database_url) if one.database_url else "none",
                details=details,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=None, help="about this many (100,000)")
    parser.add_argument(
        "--notification-records", type=int, default=20_000, help="notification's share"
    )
    add_arguments(parser)
    args = parser.parse_args()
    configure_logging(level="ERROR", fmt="json", service="bench")
    count = size(args.records, args.quick, 100_000, 10_000)
    bare_kb = bare_interpreter_kb()
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        smtp_host, smtp_port, mailbox = stack.enter_context(discarding_smtp())
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=PARTITIONS)
        groups = [d.group for d in (*SERVICES, NOOP)]
        create_topics(bootstrap, [DEFAULT_TOPICS.dlq(g) for g in groups], partitions=1)
        measured = stack.enter_context(started(bootstrap, data, (smtp_host, smtp_port)))
        wait_ready([m.watched for m in measured])
        for one in measured:
            assert one.watched.handled() == 0, f"{one.name} handled records before any was sent"
            one.start_kb = status_kb(one.pid)["VmRSS"]
        published, _ = publish(bootstrap, count)
        for one in measured:  # the whole stream: `publish` overshoots `count` a little
            one.target = published
            if one.name == "notification":
                one.target = min(published, args.notification_records)
        print(f"{published:,} records published at full speed", flush=True)
        follow(measured, lambda: mailbox.accepted)
        rows = results_of(measured, bare_kb, published)
    report(rows, args.json)


if __name__ == "__main__":
    main()
