"""Play one scenario: fresh topics and databases, the fleet, the stream, the faults, the verdict.

The order: topics first (a consumer subscribed before a topic exists sees it only at its
next metadata refresh), then the services, then the stream with the fault schedule running
beside it on the same clock. Once the stream is published and the last fault is over, the
run waits for every group to reach lag 0, stops every instance with SIGTERM, and reads what
the services did.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import text
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from common.db import make_engine
from common.kafka import create_topics
from common.records import TopicPartition
from common.topics import Topics
from dreamscape_dev.chaos.checker import (
    Check,
    Deferred,
    Mail,
    Observed,
    Verdict,
    busiest_user,
    deferred_for,
    judge,
)
from dreamscape_dev.chaos.environment import Databases, Environment
from dreamscape_dev.chaos.fleet import DEFINITIONS, Fleet
from dreamscape_dev.chaos.scenarios import SERVICES, Fault, Scenario
from dreamscape_dev.chaos.stream import LagSample, LagSampler, Publisher
from dreamscape_dev.demo import figures
from dreamscape_dev.demo.mailbox import KIND_HEADER
from dreamscape_dev.demo.orchestra import service_env
from dreamscape_dev.demo.run import NOTIFICATION_ENV
from dreamscape_dev.simulation_poison import POISON_KINDS
from dreamscape_dev.simulator import Simulation, SimulationConfig, generate
from dreamscape_dev.testing.running import wait_until

PARTITIONS: Final = 6
EVENTS_PER_FLOW: Final = 2.38
"""Records per simulated booking on average with these rates (measured over 2,000 flows)."""
CATCH_UP_TIMEOUT_S: Final = 240.0
RECIPIENT_DOMAIN: Final = "example.test"
DEFERRAL: Final = "452 4.2.2 mailbox over quota"


@dataclass(frozen=True, slots=True)
class FaultRecord:
    label: str
    started_s: float
    ended_s: float
    recovered_s: float | None = None
    """Seconds from the end of the fault until every group was back within `CAUGHT_UP`."""


@dataclass
class ScenarioResult:
    scenario: Scenario
    planned: int
    """Records in the scenario's simulation."""
    published: int
    poison: int
    verdict: Verdict
    faults: list[FaultRecord]
    samples: list[LagSample]
    exit_codes: dict[str, int]
    kills: dict[str, int]
    caught_up_s: float | None
    """From the last record published (or the last fault, if later) to lag 0 everywhere."""
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict.ok and self.caught_up_s is not None

    @property
    def max_lag(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for sample in self.samples:
            found[sample.group] = max(found.get(sample.group, 0), sample.lag)
        return found


def failed_result(scenario: Scenario, error: BaseException, seconds: float) -> ScenarioResult:
    """The result of a scenario the harness could not play to the end: a failure, with why."""
    verdict = Verdict(checks=[Check("the scenario ran to the end", False, repr(error)[:500])])
    return ScenarioResult(scenario, 0, 0, 0, verdict, [], [], {}, {}, None, round(seconds, 1))


def simulation_for(scenario: Scenario, topics: Topics) -> Simulation:
    """The scenario's stream: duplicates, republished events, reordering and poison."""
    flows = max(1, round(scenario.records / EVENTS_PER_FLOW))
    poison = max(len(POISON_KINDS), round(scenario.records * scenario.poison_share))
    return generate(
        SimulationConfig(
            flows=flows,
            seed=scenario.seed,
            duplicate_rate=0.02,
            republish_rate=0.01,
            reorder_rate=0.1,
            poison=poison,
            topics=topics,
        )
    )


def run_scenario(
    env: Environment, scenario: Scenario, out: Path, say: Callable[[str], None]
) -> ScenarioResult:
    started = time.monotonic()
    topics = Topics(prefix=f"chaos-{scenario.name}-{uuid.uuid4().hex[:6]}-")
    create_topics(env.bootstrap, topics.payment_topics, partitions=PARTITIONS)
    simulation = simulation_for(scenario, topics)
    deferred = _deferral(env, scenario, simulation)
    with env.databases() as databases:
        fleet = Fleet(_envs(env, scenario, topics, databases), out / "logs")
        for service in SERVICES:
            fleet.scale(service, scenario.instances)
        _wait_for_members(env, scenario.instances, fleet)
        phases = {"start_s": time.monotonic() - started}
        publisher = Publisher(env.bootstrap, simulation.records, scenario.rate)
        partitions = [
            TopicPartition(t, p) for t in topics.payment_topics for p in range(PARTITIONS)
        ]
        groups = {d.name: d.group for d in DEFINITIONS.values()}
        sampler = LagSampler(env.bootstrap, groups, partitions, publisher)
        faults = FaultPlayer(env, fleet, databases, topics, publisher, scenario)
        publisher.start()
        sampler.start()
        faults.start()
        try:
            _until_done(publisher, faults, fleet, say)
            phases["stream_s"] = time.monotonic() - started - phases["start_s"]
            caught_up = _catch_up(sampler, publisher, fleet)
        finally:
            faults.join(timeout=120)
            sampler.stop()
            stopping = time.monotonic()
            codes = fleet.stop_all()
            phases["stop_s"] = time.monotonic() - stopping
        if deferred is not None:
            env.smtp.reply_to_recipient(deferred.address, None)
        observing = time.monotonic()
        observed = _observe(env, topics, databases, out, codes, fleet)
        phases["observe_s"] = time.monotonic() - observing
    verdict = judge(simulation.expected, observed, deferred)
    complete = publisher.error is None and publisher.published == len(simulation.records)
    verdict.checks.append(
        Check(
            "the stream was published in full",
            complete,
            f"{publisher.published:,} of {len(simulation.records):,} records"
            + ("" if publisher.error is None else f"; {publisher.error!r}"),
        )
    )
    notes = [f"{name} {value:.1f}" for name, value in phases.items()]
    notes.append(f"publisher retried {publisher.retries} chunk(s)")
    samples = list(sampler.samples)
    return ScenarioResult(
        scenario=scenario,
        planned=len(simulation.records),
        published=publisher.published,
        poison=simulation.expected.total_records - simulation.expected.valid_records,
        verdict=verdict,
        faults=_recoveries(faults.records, samples, scenario.rate),
        samples=samples,
        exit_codes=codes,
        kills=dict(fleet.kills),
        caught_up_s=caught_up,
        seconds=round(time.monotonic() - started, 1),
        notes=notes,
    )


def _deferral(env: Environment, scenario: Scenario, simulation: Simulation) -> Deferred | None:
    if not scenario.deferred_recipient:
        return None
    deferred = deferred_for(simulation.records, busiest_user(simulation.records), RECIPIENT_DOMAIN)
    env.smtp.reply_to_recipient(deferred.address, DEFERRAL)
    return deferred


def _envs(
    env: Environment, scenario: Scenario, topics: Topics, databases: Databases
) -> dict[str, dict[str, str]]:
    shared = {
        "TOPIC_PREFIX": topics.prefix,
        "KAFKA_GROUP_PROTOCOL": scenario.group_protocol,
        "DB_START_TIMEOUT_SECONDS": "120",
        "SHUTDOWN_TIMEOUT_SECONDS": "30",
    }
    if scenario.group_protocol == "classic":
        shared |= {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500"}
    smtp = {"SMTP_HOST": env.smtp.host, "SMTP_PORT": str(env.smtp.port)}
    envs = {}
    for service in SERVICES:
        extra = {**shared, **(NOTIFICATION_ENV | smtp if service == "notification" else {})}
        envs[service] = service_env(env.bootstrap, databases.service_urls[service], extra)
    return envs


def _wait_for_members(env: Environment, instances: int, fleet: Fleet) -> None:
    """Start the stream once every group is stable with all its members, so the lag and
    recovery figures measure the faults, not the services' start-up."""
    admin = AdminClient({"bootstrap.servers": env.bootstrap, "log_level": 0})
    groups = [d.group for d in DEFINITIONS.values()]

    def stable() -> bool:
        if fleet.check_deaths():
            raise RuntimeError(f"a service died at start-up: {fleet.deaths}")
        try:
            futures = admin.describe_consumer_groups(groups, request_timeout=5)
            described = [future.result() for future in futures.values()]
        except Exception:  # coordinator not ready yet: that is what we wait for
            return False
        return all(
            d.state == ConsumerGroupState.STABLE and len(d.members) == instances for d in described
        )

    wait_until(stable, 120, "every group stable with all its instances")


class FaultPlayer(threading.Thread):
    """Plays the schedule on the stream's clock and records when each fault began and ended."""

    def __init__(
        self,
        env: Environment,
        fleet: Fleet,
        databases: Databases,
        topics: Topics,
        publisher: Publisher,
        scenario: Scenario,
    ) -> None:
        super().__init__(name="chaos-faults", daemon=True)
        self._env, self._fleet, self._databases = env, fleet, databases
        self._topics, self._publisher, self._scenario = topics, publisher, scenario
        self._rng = random.Random(scenario.seed)
        self.records: list[FaultRecord] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        wait_until(lambda: self._publisher.started_at > 0, 60, "the stream to start")
        origin = self._publisher.started_at
        try:
            for fault in sorted(self._scenario.faults, key=lambda f: f.at_s):
                pause = origin + fault.at_s - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # the schedule: the fault is due at this time
                began = time.monotonic() - origin
                self._apply(fault)
                self.records.append(
                    FaultRecord(fault.label, round(began, 2), round(time.monotonic() - origin, 2))
                )
        except BaseException as exc:
            self.error = exc

    def _apply(self, fault: Fault) -> None:
        env = self._env
        if fault.action == "kill_instance":
            assert fault.service is not None
            self._fleet.kill(fault.service, self._rng)
        elif fault.action == "kill_leader":
            self._kill_leader()
        elif fault.action == "rolling_restart":
            for node in list(env.cluster.nodes):
                env.stop_broker(node, signal.SIGTERM)
                env.start_broker(node)
                env.wait_fully_replicated(self._topics.payment_topics)
        elif fault.action == "cut_network":
            self._for(
                fault.seconds,
                [p.cut for p in env.broker_proxies],
                [p.restore for p in env.broker_proxies],
            )
        elif fault.action == "cut_database":
            proxy = env.database_proxy
            assert proxy is not None
            self._for(fault.seconds, [proxy.cut], [proxy.restore])
        elif fault.action == "read_only_database":
            self._for(
                fault.seconds,
                [lambda: env.set_read_only(self._databases, True)],
                [lambda: env.set_read_only(self._databases, False)],
            )
        elif fault.action == "stop_smtp":
            self._for(fault.seconds, [env.smtp.stop], [env.smtp.start])
        elif fault.action == "scale":
            for service in SERVICES:
                self._fleet.scale(service, fault.instances)

    def _kill_leader(self) -> None:
        ends = self._publisher.ends()
        busiest = (
            max(ends, key=lambda tp: ends[tp])
            if ends
            else TopicPartition(self._topics.payment_topics[0], 0)
        )
        cluster = self._env.cluster
        leader = cluster.leader_of(busiest.topic, busiest.partition)
        self._env.stop_broker(leader, signal.SIGKILL)
        wait_until(
            lambda: cluster.leader_of(busiest.topic, busiest.partition) not in (leader, -1),
            60,
            "a new leader",
        )
        self._env.start_broker(leader)

    @staticmethod
    def _for(seconds: float, begin: list[Callable[[], Any]], end: list[Callable[[], Any]]) -> None:
        for action in begin:
            action()
        try:
            time.sleep(seconds)  # the fault's duration is the point of the fault
        finally:
            for action in end:
                action()


def _until_done(
    publisher: Publisher, faults: FaultPlayer, fleet: Fleet, say: Callable[[str], None]
) -> None:
    """Wait for the stream and the schedule to finish, watching for deaths meanwhile."""
    last = 0.0
    while publisher.is_alive() or faults.is_alive():
        for death in fleet.check_deaths():
            say(f"    death: {death}")
        if time.monotonic() - last > 10:
            last = time.monotonic()
            say(f"    published {publisher.published:,}, faults done {len(faults.records)}")
        publisher.join(timeout=0.5)  # wakes as soon as the stream is published
    if faults.error is not None:
        raise RuntimeError(f"a fault failed to play: {faults.error!r}") from faults.error


def _catch_up(sampler: LagSampler, publisher: Publisher, fleet: Fleet) -> float | None:
    """Seconds until every group's lag reads 0 after the stream ended (None: timed out)."""
    start = time.monotonic()

    def caught_up() -> bool:
        fleet.check_deaths()  # recorded, and judged with the rest
        latest = sampler.reading_after(publisher.finished_at or start)
        return latest is not None and all(v == 0 for v in latest.values())

    try:
        wait_until(caught_up, CATCH_UP_TIMEOUT_S, "every group at lag 0")
    except AssertionError:  # wait_until's timeout: the verdict says the groups never caught up
        return None
    return round(time.monotonic() - start, 1)


def _observe(
    env: Environment,
    topics: Topics,
    databases: Databases,
    out: Path,
    codes: dict[str, int],
    fleet: Fleet,
) -> Observed:
    engine = make_engine(databases.direct_urls["voyage"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT booking_id, status, refunded_amount FROM booking")
            )
            bookings = {b: (s, Decimal(str(r))) for b, s, r in rows}
    finally:
        engine.dispose()
    mails = [
        Mail(
            str(m.message.get(KIND_HEADER, "unknown")),
            str(m.message.get("Message-ID", "")),
            m.rcpt_tos,
        )
        for m in env.smtp.messages
    ]
    env.smtp.clear()
    groups = {d.group: d.name for d in DEFINITIONS.values()}
    reading = Retrying(  # a broker just restarted may not answer its first metadata request
        retry=retry_if_exception_type(KafkaException),
        stop=stop_after_delay(60),
        wait=wait_fixed(2),
        reraise=True,
    )
    dlq = reading(figures.dlq_by_reason, env.bootstrap, list(groups), topics)
    report = figures.analytics_report_and_dashboard(
        databases.direct_urls["analytics"], out / "dashboard.html"
    )
    return Observed(
        bookings=bookings,
        mails=mails,
        ledger=figures.ledger_by_kind(databases.direct_urls["notification"]),
        dlq={groups[g]: counts for g, counts in dlq.items()},
        analytics=report,
        exit_codes=codes,
        deaths=list(fleet.deaths),
        kills=dict(fleet.kills),
    )


CAUGHT_UP_SECONDS: Final = 2.0
"""A group is "caught up" again when its lag is within this many seconds of stream."""


def _recoveries(
    records: list[FaultRecord], samples: list[LagSample], rate: int
) -> list[FaultRecord]:
    threshold = max(20, int(rate * CAUGHT_UP_SECONDS))
    by_time: dict[float, dict[str, int]] = {}
    for sample in samples:
        by_time.setdefault(sample.seconds, {})[sample.group] = sample.lag
    recovered = []
    for record in records:
        latest: dict[str, int] = {}
        found = None
        for seconds in sorted(by_time):
            latest.update(by_time[seconds])
            if (
                seconds >= record.ended_s
                and len(latest) == len(DEFINITIONS)
                and max(latest.values()) <= threshold
            ):
                found = round(seconds - record.ended_s, 1)
                break
        recovered.append(FaultRecord(record.label, record.started_s, record.ended_s, found))
    return recovered
