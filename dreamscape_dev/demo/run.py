"""One demo run, start to finish: broker, mailbox, services, publish, follow, stop, summarise.

The broker is the embedded Tansu unless `KAFKA_BOOTSTRAP_SERVERS` names a running one (for
instance `dreamscape broker --kind apache`); on a broker that outlives the demo, each run
uses topics under a fresh prefix (`demo-<id>-`), so runs never see each other's records.

The order matters in two places. Topics are created before the services start, because a
consumer picks up a topic created after it subscribed only at its next metadata refresh
(30 s). The services are started before the simulation is generated and published, so their
start-up (imports, schema, group join) overlaps the publishing instead of following it.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common.kafka import KafkaProducer, create_topics
from common.topics import DEFAULT_TOPICS, Topics
from dreamscape_dev.demo import checks, figures
from dreamscape_dev.demo.mailbox import Mailbox
from dreamscape_dev.demo.orchestra import (
    SERVICES,
    TANSU_FAST_JOIN,
    ServiceProcess,
    service_env,
    stop_all,
)
from dreamscape_dev.demo.output import OutputDir
from dreamscape_dev.demo.pages import index_page
from dreamscape_dev.demo.progress import FollowResult, follow
from dreamscape_dev.demo.summary import Summary
from dreamscape_dev.simulator import Simulation, SimulationConfig, generate
from dreamscape_dev.testing.broker import BOOTSTRAP_ENV, EmbeddedBroker

PARTITIONS: Final = 6
NOTIFICATION_ENV: Final = {
    "MAIL_FROM": "DreamScape <no-reply@dreamscape.example>",
    "PAYMENT_RETRY_URL": "https://dreamscape.example/bookings/{booking_id}/pay?after={payment_id}",
    "RECIPIENT_EMAIL_TEMPLATE": "{user_id}@example.test",
}


@dataclass(frozen=True, slots=True)
class Options:
    flows: int
    seed: int
    timeout_s: float
    output: Path


def simulation_config(flows: int, seed: int, topics: Topics = DEFAULT_TOPICS) -> SimulationConfig:
    """The stream the demo publishes: failures, retries, refunds, duplicates, reordering, poison."""
    return SimulationConfig(
        flows=flows, seed=seed, duplicate_rate=0.02, reorder_rate=0.1, poison=10, topics=topics
    )


@dataclass(frozen=True, slots=True)
class DemoBroker:
    """Where the demo publishes, under which topic names, and the services' extra settings."""

    bootstrap: str
    topics: Topics
    description: str
    service_env: Mapping[str, str]


@contextmanager
def demo_broker() -> Iterator[DemoBroker]:
    """The broker named by `KAFKA_BOOTSTRAP_SERVERS`, or an embedded Tansu for this run."""
    given = os.environ.get(BOOTSTRAP_ENV)
    if given:
        topics = Topics(prefix=f"demo-{uuid.uuid4().hex[:8]}-")
        described = f"{given} ({BOOTSTRAP_ENV}), topics under {topics.prefix}"
        yield DemoBroker(given, topics, described, {"TOPIC_PREFIX": topics.prefix})
        return
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        described = f"embedded Tansu on {bootstrap}"
        yield DemoBroker(bootstrap, DEFAULT_TOPICS, described, TANSU_FAST_JOIN)


def say(text: str = "") -> None:
    print(text, flush=True)


def run(options: Options) -> int:
    """The whole demo; returns the process exit code."""
    started = time.monotonic()
    out = OutputDir(options.output).fresh()
    say(
        f"DreamScape demo: {options.flows:,} payment flows (seed {options.seed}), output in {out.root}/"
    )
    with demo_broker() as broker, Mailbox(out.mail) as mailbox:
        bootstrap, topics = broker.bootstrap, broker.topics
        say(f"  broker      {broker.description}")
        create_topics(bootstrap, topics.payment_topics, partitions=PARTITIONS)
        say(f"  smtp        {mailbox.host}:{mailbox.port}, saving every email to {out.mail}/")
        services = _start_services(out, bootstrap, mailbox, broker.service_env)
        say(
            f"  services    {', '.join(s.definition.module for s in services)}; logs in {out.logs}/"
        )
        try:
            simulation = generate(simulation_config(options.flows, options.seed, topics))
            producer = KafkaProducer({"bootstrap.servers": bootstrap, "acks": "all"})
            ends = producer.send_confirmed(simulation.records, timeout_s=60)
            say(_published(simulation))
            say("  catching up (consumer lag = published - committed, per service):")
            result = follow(
                bootstrap,
                ends,
                services,
                timeout_s=options.timeout_s,
                extra=lambda: f"emails {mailbox.count:>5,}",
            )
        finally:
            codes = stop_all(services)
        say(_stopped(codes))
        if result.outcome != "caught_up":
            return _gave_up(result, services, options.timeout_s)
        summary = _summarise(out, bootstrap, topics, simulation, options, codes, result, mailbox)
    summary.write_json(out.summary)
    out.index.write_text(index_page(summary, mailbox.saved, out.root), encoding="utf-8")
    say()
    say(summary.text())
    say()
    elapsed = time.monotonic() - started
    if not summary.ok:
        say(f"demo FAILED after {elapsed:.1f} s: see the checks above; open {out.index}")
        return 1
    say(f"demo OK in {elapsed:.1f} s: open {out.index} (emails, dashboard, summary)")
    return 0


def _start_services(
    out: OutputDir, bootstrap: str, mailbox: Mailbox, shared: Mapping[str, str]
) -> list[ServiceProcess]:
    smtp = {"SMTP_HOST": mailbox.host, "SMTP_PORT": str(mailbox.port)}
    services = []
    for definition in SERVICES:
        extra = {**NOTIFICATION_ENV, **smtp} if definition.name == "notification" else {}
        extra |= shared
        env = service_env(bootstrap, out.database_url(definition.name), extra)
        services.append(ServiceProcess.start(definition, env, out.log(definition.name)))
    return services


def _published(simulation: Simulation) -> str:
    exp = simulation.expected
    return (
        f"  published   {exp.total_records:,} records to {len(DEFAULT_TOPICS.payment_topics)} topics x {PARTITIONS} partitions: "
        f"{exp.valid_records:,} valid ({exp.duplicates} duplicates), "
        f"{exp.total_records - exp.valid_records} poison"
    )


def _stopped(codes: dict[str, int]) -> str:
    described = ", ".join(f"{name} {code}" for name, code in codes.items())
    return f"  stopped     SIGTERM to every service; exit codes: {described}"


def _gave_up(result: FollowResult, services: list[ServiceProcess], timeout_s: float) -> int:
    if result.dead is not None:
        why = f"{result.dead.name} exited with {result.dead.exit_code()} before it was stopped"
    else:
        behind = ", ".join(f"{n} {lag:,}" for n, lag in result.lags.items() if lag)
        why = f"not caught up within {timeout_s:.0f} s (lag: {behind})"
    print(f"demo FAILED: {why}", file=sys.stderr)
    for service in services:
        if tail := service.tail():
            print(f"--- last lines of {service.log} ---\n{tail}", file=sys.stderr)
    return 1


def _summarise(
    out: OutputDir,
    bootstrap: str,
    topics: Topics,
    simulation: Simulation,
    options: Options,
    codes: dict[str, int],
    result: FollowResult,
    mailbox: Mailbox,
) -> Summary:
    expected = simulation.expected
    groups = [s.group for s in SERVICES]
    with ThreadPoolExecutor(2) as pool:
        dlq_future = pool.submit(figures.dlq_by_reason, bootstrap, groups, topics)
        report_future = pool.submit(
            figures.analytics_report_and_dashboard, out.database_url("analytics"), out.dashboard
        )
        bookings = figures.booking_statuses(out.database_url("voyage"))
        ledger = figures.ledger_by_kind(out.database_url("notification"))
        dead_letters, report = dlq_future.result(), report_future.result()
    sent = mailbox.by_kind()
    found = [
        checks.clean_exits(codes),
        *checks.bookings(bookings, expected),
        *checks.emails(sent, ledger, expected),
        *checks.dead_letters(dead_letters, expected),
        *checks.analytics(report, expected),
    ]
    return Summary(
        flows=options.flows,
        seed=options.seed,
        expected=expected,
        bookings=bookings,
        emails_by_kind=sent,
        ledger_by_kind=ledger,
        dlq_by_reason=dead_letters,
        analytics=figures.headline(report),
        checks=found,
        exit_codes=codes,
        caught_up_seconds=result.seconds,
    )
