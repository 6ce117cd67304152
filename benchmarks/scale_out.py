"""Voyage scaled out: 1, 2 and 4 instances in one consumer group on PostgreSQL, 12 partitions.

    .venv/bin/python benchmarks/scale_out.py [--records 50000] [--instances 1 2 4]
                                             [--batch-size 1000] [--quick] [--json PATH]

So a team can size a deployment: how much more does another instance buy? For each
instance count, a fresh set of the four payment topics (12 partitions each, under a prefix
of their own) and a fresh PostgreSQL database, shared by the instances as a deployment
shares one. The instances are processes (spawned by `multiprocessing`), each running the
voyage handler in the run loop as `voyage.py` does: an instance is CPU-bound in one Python
process, so instances as threads of one process would share one interpreter lock and could
not scale at all; processes are also how the service is deployed.

The group is left to settle first (every one of the 48 partitions assigned, each instance
holding some, no change for 2 s), and only then are the records published: the mixed
stream with 2 % duplicates and 10 % reordering of `voyage.py`, generated beforehand so
publishing is only the producer's work. So no group join and no rebalance falls into the
timed window, which runs from the first batch any instance started to the last one any
finished. Printed: the aggregate rate, and each instance's events over that window (the
per-instance rate). Each run is checked: the database holds every distinct event once.

The anchor of the 1-instance row is a bare `consume()` loop over the same records and
partitions after it; the others' is the 1-instance rate of the same run, so their ratio is
the speed-up. Issue 13 sets no goal here. `--quick` reads about 6,000 records.

What saturates is measured, not guessed: during each group's run, every 0.1 s, the CPU
time (user + system, `/proc/<pid>/stat`) of the broker process, of the PostgreSQL server
(the postmaster and every process under it: one backend per connection of the instances'
pools, the WAL writer, the checkpointer...), of each instance and of this process (the
publisher, and the reading of the instances' reports), and the whole machine's busy time
from `/proc/stat`. Over the snapshots that enclose the timed window, each is printed as
cores used (CPU-seconds over wall seconds) beside the machine's busy cores out of its
cores, with what none of them used ("other": another engineer's benchmarks on a shared
machine, the kernel); the same figures are in each row's `details["cpu_cores"]`. A role
near one core is a single-threaded process at its limit; a machine near all its cores
busy is CPU-bound as a whole, and then a further instance can only time-share the cores
the others use. A backend that exits inside the window loses its last 0.1 s; a server on
another host (`TEST_DATABASE_URL`) is not seen and shows as null. Beyond CPU, a group
cannot use more instances than partitions: 12 here.

The records are published while the instances read them, so a group cannot outrun the
publisher for long: each run also prints how fast the publisher got its records acknowledged,
and an aggregate near that rate measures the publisher and the broker, not the instances.
Read the figures for a given machine, not this paragraph: docs/performance.md quotes a run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from results import Result, add_arguments, describe_url, report, size
from run_loop import FAST_GROUP, bare
from sqlmodel import Session
from voyage import open_voyage_database, simulate

from common.db import TRANSIENT_DB_ERRORS
from common.handlers import ConsumerSpec
from common.kafka import KafkaConsumer, KafkaProducer, create_topics
from common.lifecycle import BatchHandled, Bus, LifecycleEvent, PartitionsChanged
from common.logs import LogSubscriber, configure_logging
from common.metrics import RuntimeMetrics
from common.records import OutboundRecord
from common.runner import Runner
from common.service import tune_gc
from common.settings import RunnerSettings
from common.topics import Topics
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.postgres import PostgresServer, fresh_database, optional_postgres
from voyage_consumer import store
from voyage_consumer.handler import VoyageHandler, VoyageMetrics

PARTITIONS = 12
SETTLE_S = 2.0
TIMEOUT_S = 600.0
SAMPLE_S = 0.1
"""How often the CPU of each process is read: a tenth of the shortest full-size window."""
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
PUBLISHER = "publisher"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
"""A PostgreSQL server at one of these runs here, and its processes can be found."""


# -- CPU of the processes involved -----------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far (its threads too), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime


def parents() -> dict[int, int]:
    """Every process's parent, by pid (this kernel has no `/proc/<pid>/task/*/children`)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(root: int) -> list[int]:
    """`root` and every process under it, now."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def listening_pid(port: int) -> int | None:
    """The process listening on TCP `port` of this machine, or None (not here, not visible)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and inodes:
            try:
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    return int(entry.name)
            except OSError:
                continue  # exited meanwhile, or not ours to look into
    return None


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy, all cores summed (`/proc/stat`'s first line)."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in first[1:8])
    return (user + nice + system + irq + softirq) * TICK_S


@dataclass(frozen=True)
class Snapshot:
    at: float
    """`time.monotonic()`, the clock the instances' batch times are on."""
    by_pid: Mapping[int, float]
    machine_busy_s: float


class CpuSampler:
    """Every `SAMPLE_S`, in a thread, the CPU seconds of each role's processes and the machine's.

    Roles are fixed pids (`broker`, each instance, the publisher) or, for `postgresql`, the
    server's postmaster and whatever runs under it at that moment (backends come with
    connections).
    """

    def __init__(self, roles: Mapping[str, Sequence[int]], postmaster: int | None) -> None:
        self.roles = {role: list(pids) for role, pids in roles.items()}
        self.postmaster = postmaster
        self.snapshots: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def start(self) -> None:
        self.snapshot()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.snapshot()

    def snapshot(self) -> None:
        if self.postmaster is not None:
            self.roles["postgresql"] = descendants(self.postmaster)
        pids = {pid for pids in self.roles.values() for pid in pids}
        by_pid = {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}
        self.snapshots.append(Snapshot(time.monotonic(), by_pid, machine_busy_s()))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.snapshot()

    def cores(self, first: float, last: float) -> dict[str, Any]:
        """Cores each role used over the snapshots enclosing [`first`, `last`], and the machine's.

        A pid's CPU counts from the opening snapshot (from 0 if it started later) to the last
        one it was seen in, so a backend that exited inside the window keeps what it used.
        """
        inside = [s for s in self.snapshots if s.at <= first] or self.snapshots[:1]
        opening = inside[-1]
        closing = next((s for s in self.snapshots if s.at >= last), self.snapshots[-1])
        span = [s for s in self.snapshots if opening.at <= s.at <= closing.at]
        wall = closing.at - opening.at
        used: dict[int, float] = {}
        for snapshot in span:
            for pid, cpu in snapshot.by_pid.items():
                used[pid] = cpu - opening.by_pid.get(pid, 0.0)

        def cores_of(pids: Iterable[int]) -> float:
            return round(sum(used.get(pid, 0.0) for pid in pids) / wall, 2)

        every = {pid for snapshot in span for pid in snapshot.by_pid}
        postgres_pids = every - {
            pid for role, pids in self.roles.items() if role != "postgresql" for pid in pids
        }
        found: dict[str, Any] = {
            "broker": cores_of(self.roles["broker"]) if self.roles["broker"] else None,
            "postgresql": cores_of(postgres_pids) if self.postmaster is not None else None,
            "instances": [cores_of([pid]) for pid in self.roles["instances"]],
            PUBLISHER: cores_of(self.roles[PUBLISHER]),
            "machine_busy": round((closing.machine_busy_s - opening.machine_busy_s) / wall, 2),
            "machine_cores": os.cpu_count(),
            "over_s": round(wall, 2),
        }
        measured = sum(found["instances"]) + sum(
            found[role] or 0.0 for role in ("broker", "postgresql", PUBLISHER)
        )
        found["other"] = round(found["machine_busy"] - measured, 2)
        return found


def cpu_line(cores: Mapping[str, Any]) -> str:
    """`instances 0.95 + 0.90, postgresql 0.30, ... ; machine 1.98 of 2 busy (other 0.05)`."""

    def of(role: str) -> str:
        value = cores[role]
        return "not seen" if value is None else f"{value:.2f}"

    instances = " + ".join(f"{value:.2f}" for value in cores["instances"])
    return (
        f"cores used over {cores['over_s']:.1f} s: instances {instances}, "
        f"postgresql {of('postgresql')}, broker {of('broker')}, publisher {of(PUBLISHER)}; "
        f"machine {cores['machine_busy']:.2f} of {cores['machine_cores']} busy "
        f"(other {cores['other']:.2f})"
    )


def instance(
    number: int,
    bootstrap: str,
    prefix: str,
    url: str,
    batch_size: int,
    reports: Queue[tuple[Any, ...]],
    stop: Event,
) -> None:
    """One voyage instance (in its own process): the run loop until `stop` is set.

    Reports its partition changes and handled batches on `reports`, and at the end
    ("done", number, events, first batch start, last batch end, CPU seconds), the times
    on the system-wide monotonic clock so the parent can compare instances.
    """
    configure_logging(level="ERROR", fmt="json", service=f"bench-voyage-{number}")
    engine = open_voyage_database(url)
    settings = RunnerSettings(
        batch_size=batch_size,
        topic_prefix=prefix,
        kafka={"bootstrap.servers": bootstrap, **FAST_GROUP},
    )
    group = f"{prefix}voyage"
    state = {"events": 0, "first": 0.0, "last": 0.0, "cpu": 0.0}

    def observe(event: LifecycleEvent) -> None:
        if isinstance(event, PartitionsChanged):
            changed = [(tp.topic, tp.partition) for tp in event.partitions]
            reports.put(("partitions", number, event.change, changed))
        elif isinstance(event, BatchHandled):
            now = time.monotonic()
            if not state["first"]:
                state["first"] = now - event.duration_s
                state["cpu"] = time.process_time()
            state["events"] += len(event.handled)
            state["last"] = now
            reports.put(("handled", number, len(event.handled)))

    spec = ConsumerSpec(
        name="bench-voyage",
        group_id=group,
        handle=VoyageHandler(engine, VoyageMetrics(CollectorRegistry())),
        transient_errors=TRANSIENT_DB_ERRORS,
    )
    config = settings.consumer_config(group)
    runner = Runner(
        spec,
        settings,
        lambda listener: KafkaConsumer(config, listener),
        KafkaProducer({"bootstrap.servers": bootstrap}),
        Bus([LogSubscriber(), RuntimeMetrics(CollectorRegistry(), "bench"), observe]),
    )
    tune_gc()
    thread = threading.Thread(target=runner.run)
    thread.start()
    stop.wait()
    runner.stop()
    thread.join()
    engine.dispose()
    cpu = time.process_time() - state["cpu"]
    reports.put(("done", number, state["events"], state["first"], state["last"], cpu))


@dataclass
class Group:
    """What the parent knows of the instances, from their reports."""

    size: int
    assigned: dict[int, set[tuple[str, int]]] = field(default_factory=dict)
    handled: dict[int, int] = field(default_factory=dict)
    done: dict[int, tuple[int, float, float, float]] = field(default_factory=dict)
    changed_at: float = 0.0

    def take(self, report: tuple[Any, ...]) -> None:
        kind, number, *rest = report
        if kind == "partitions":
            change, partitions = rest
            owned = self.assigned.setdefault(number, set())
            if change == "assigned":
                owned.update(map(tuple, partitions))
            else:
                owned.difference_update(map(tuple, partitions))
            self.changed_at = time.monotonic()
        elif kind == "handled":
            self.handled[number] = self.handled.get(number, 0) + rest[0]
        elif kind == "done":
            self.done[number] = (rest[0], rest[1], rest[2], rest[3])

    def settled(self, partitions: int) -> bool:
        owned = [len(self.assigned.get(number, ())) for number in range(self.size)]
        return (
            all(owned)
            and sum(owned) == partitions
            and time.monotonic() - self.changed_at >= SETTLE_S
        )


def wait_for(
    group: Group,
    reports: Queue[tuple[Any, ...]],
    processes: Sequence[SpawnProcess],
    condition: Callable[[], bool],
    what: str,
) -> None:
    """Take reports until `condition()` holds; raise if an instance died or time ran out.

    An instance that exited is a failure only once its reports are all read and its last
    is not "done".
    """
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        try:
            group.take(reports.get(timeout=0.2))
            continue
        except queue.Empty:
            pass
        dead = [
            process.name
            for number, process in enumerate(processes)
            if process.exitcode is not None and number not in group.done
        ]
        if dead:
            raise RuntimeError(f"instances exited while waiting for {what}: {dead}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}: {group}")


@dataclass(frozen=True)
class GroupRun:
    instances: int
    aggregate: float
    per_instance: list[float]
    window_s: float
    published_per_s: float
    """How fast the publisher got the records acknowledged: the group cannot go faster than
    it for long, so an aggregate near it measures the publisher, not the instances."""
    cpu_per_instance: list[float]
    cpu_cores: dict[str, Any]
    bare: float | None
    database: str


def run_group(
    count: int,
    records: Sequence[OutboundRecord],
    distinct: int,
    bootstrap: str,
    server: PostgresServer,
    batch_size: int,
    with_bare: bool,
    located: tuple[int | None, int | None],
) -> GroupRun:
    """`count` instances in one group over `records` published after the group settled.

    `located`: the pids of the broker and of the PostgreSQL postmaster (None: not found
    here), whose CPU is sampled with the instances' and this process's while they work.
    """
    topics = Topics(f"scale{count}.")
    create_topics(bootstrap, topics.payment_topics, partitions=PARTITIONS)
    prefixed = [OutboundRecord(topics.prefix + r.topic, r.key, r.value, r.headers) for r in records]
    context = multiprocessing.get_context("spawn")
    with fresh_database(server) as url:
        open_voyage_database(url).dispose()  # migrated once, not raced for by the instances
        reports: Queue[tuple[Any, ...]] = context.Queue()
        stop = context.Event()
        processes = [
            context.Process(
                target=instance,
                args=(number, bootstrap, topics.prefix, url, batch_size, reports, stop),
                name=f"voyage-{number}",
                daemon=True,
            )
            for number in range(count)
        ]
        for process in processes:
            process.start()
        group = Group(count)
        partitions = PARTITIONS * len(topics.payment_topics)
        broker_pid, postmaster = located
        roles = {
            "broker": [broker_pid] if broker_pid is not None else [],
            "instances": [process.pid or 0 for process in processes],
            PUBLISHER: [os.getpid()],
        }
        sampler = CpuSampler(roles, postmaster)
        try:
            wait_for(group, reports, processes, lambda: group.settled(partitions), "the group")
            sampler.start()
            try:
                producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
                publishing = time.monotonic()
                producer.send(prefixed)
                producer.flush(120)
                total = len(prefixed)
                published_s = time.monotonic() - publishing
                wait_for(
                    group,
                    reports,
                    processes,
                    lambda: sum(group.handled.values()) >= total,
                    "events",
                )
            finally:
                sampler.stop()
        finally:
            stop.set()
        wait_for(group, reports, processes, lambda: len(group.done) == count, "the instances")
        for process in processes:
            process.join(30)
        with Session(engine := open_voyage_database(url)) as session:
            applied = store.count_processed(session=session)
        engine.dispose()
        assert applied == distinct, f"{count} instances: {applied} of {distinct} events applied"
        database = describe_url(url)
    first = min(start for _, start, _, _ in group.done.values() if start)
    last = max(end for _, _, end, _ in group.done.values())
    window = last - first
    ordered = [group.done[number] for number in range(count)]
    bare_rate = None
    if with_bare:
        bare_rate = bare(
            bootstrap, len(prefixed), f"{topics.prefix}bare", None, topics.payment_topics
        )
    return GroupRun(
        instances=count,
        aggregate=sum(events for events, *_ in ordered) / window,
        per_instance=[events / window for events, *_ in ordered],
        window_s=window,
        published_per_s=len(prefixed) / published_s,
        cpu_per_instance=[cpu for *_, cpu in ordered],
        cpu_cores=sampler.cores(first, last),
        bare=bare_rate,
        database=database,
    )


def results_of(runs: Sequence[GroupRun], records: int, batch_size: int) -> list[Result]:
    """One row per instance count; the 1-instance run is the others' anchor."""
    single = next((run for run in runs if run.instances == 1), None)
    rows = []
    for run in runs:
        if run.instances == 1 or single is None:
            anchor, anchor_rate = "bare consume(), same records and partitions", run.bare or 0.0
        else:
            anchor, anchor_rate = "1 voyage instance, same run", single.aggregate
        rows.append(
            Result(
                name=f"voyage scale-out: {run.instances} instance{'s' * (run.instances > 1)}, "
                f"{PARTITIONS} partitions, PostgreSQL",
                benchmark="scale_out.py",
                events_per_s=run.aggregate,
                anchor=anchor,
                anchor_events_per_s=anchor_rate,
                records=records,
                database=run.database,
                details={
                    "instances": run.instances,
                    "partitions_per_topic": PARTITIONS,
                    "per_instance_events_per_s": [round(rate) for rate in run.per_instance],
                    "per_instance_mean_events_per_s": round(run.aggregate / run.instances),
                    "cpu_seconds_per_instance": [round(cpu, 1) for cpu in run.cpu_per_instance],
                    "cpu_cores": run.cpu_cores,
                    "window_s": round(run.window_s, 2),
                    "published_events_per_s": round(run.published_per_s),
                    "batch_size": batch_size,
                    "instances_are": "processes",
                },
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=None, help="about this many (50,000)")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true", help="skip: it needs PostgreSQL")
    add_arguments(parser)
    args = parser.parse_args()
    configure_logging(level="ERROR", fmt="json", service="bench")
    records, distinct = simulate(size(args.records, args.quick, 50_000, 6_000))
    runs: list[GroupRun] = []
    with optional_postgres(not args.no_postgres) as server, EmbeddedBroker() as broker:
        if server is None:
            print("scale-out left out: it runs on PostgreSQL only")
        else:
            print(f"{len(records)} records per run ({distinct} distinct events)", flush=True)
            local = server.host in LOCAL_HOSTS
            located = (listening_pid(broker.port), listening_pid(server.port) if local else None)
            for count in args.instances:
                run = run_group(
                    count,
                    records,
                    distinct,
                    broker.bootstrap_servers,
                    server,
                    args.batch_size,
                    with_bare=count == 1,
                    located=located,
                )
                runs.append(run)
                per = ", ".join(f"{rate:,.0f}" for rate in run.per_instance)
                print(
                    f"  {count} instance(s): {run.aggregate:,.0f} events/s in all over "
                    f"{run.window_s:.1f} s; per instance {per} events/s; the publisher "
                    f"got {run.published_per_s:,.0f} records/s acknowledged",
                    flush=True,
                )
                print(f"    {cpu_line(run.cpu_cores)}", flush=True)
    report(results_of(runs, len(records), args.batch_size), args.json)


if __name__ == "__main__":
    main()
