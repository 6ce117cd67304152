"""`make soak`: each service's resident memory against the events it handled, over a long stream.

    .venv/bin/python benchmarks/soak.py [--flows 63000] [--rate 300] [--only voyage ...]
                                        [--census | --trace] [--out bench-output/soak]

A daemon that runs for months must not grow with the events it handles. This starts a
broker (`dreamscape_dev.testing.broker.choose_broker`: Apache Kafka where Java and Maven
exist, else the embedded Tansu; `TEST_BROKER=tansu` picks it), a local SMTP server that
accepts and discards every message, and the three services as real processes
(`python -m <package>`, each on its own SQLite file, configured by environment as in
production, `/metrics` on a port of its own). Then it publishes one simulation of `--flows`
bookings (about 2.4 records each: 63,000 flows make ~150,000 records; 2 % duplicates, 1 %
republished under new eventIds, 10 % reordered, as the chaos runs publish) at a steady rate,
300 records/s by default: small polls of varying size, which is how a service spends most
of its life. Once a second it reads each service's resident set size (`VmRSS`) and the
records its run loop has finished (`dreamscape_consumer_records_total`: handled and
dead-lettered), until every group has committed the whole stream.

Printed: per service, the RSS when it had handled a quarter, half, three quarters and all of
the stream, and the growth from the first quarter to the end (and per record, in bytes).
The first quarter is the baseline: start-up, caches and the allocators' arenas fill before
it. The goal (issue 22) is a flat line, within a few MB, from the first quarter to the end.
The samples go to `<out>/soak.json`, the services' logs to `<out>/logs/`. The full stream
takes ~9 minutes; use `--flows 10000` for a quick look.

Hunting a growth (each service then starts through `SERVE_WATCHED`, files in `<out>/watch/`):

* `--census`, cheap: at each quarter the objects the collector tracks, counted by type (the
  ones `gc.freeze()` hid at start-up included), the largest containers and who holds them,
  and the heap: glibc's arenas (in use, free), pymalloc's arenas and blocks, anonymous
  memory. At the end a full `gc.collect()` and the census again. A Python structure that
  grows shows in the counts; memory that grows while they stay flat is C (SQLite,
  librdkafka) or fragmentation, which the heap figures tell apart.
* `--trace`: tracemalloc (25 frames, several times slower: use a short stream), a snapshot
  at each quarter, and the allocation sites that grew most from the first quarter to the end.

A benchmark that prints numbers, never a test: no figure here is asserted.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from common.errors import TransientError
from common.kafka import GroupOffsets, create_topics
from common.records import OutboundRecord, TopicPartition
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.chaos.stream import Publisher
from dreamscape_dev.demo.orchestra import (
    SERVICES,
    TANSU_FAST_JOIN,
    ServiceDef,
    ServiceProcess,
    service_env,
    stop_all,
)
from dreamscape_dev.demo.progress import lag
from dreamscape_dev.demo.run import NOTIFICATION_ENV
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import choose_broker, start_broker
from dreamscape_dev.testing.proxy import free_port

PARTITIONS: Final = 6
SAMPLE_EVERY_S: Final = 1.0
QUARTERS: Final = (0.25, 0.5, 0.75, 1.0)
READY_TIMEOUT_S: Final = 120.0
TRACE_FRAMES: Final = 25
HANDLED_METRIC: Final = "dreamscape_consumer_records"


# -- the services' side of --census and --trace ---------------------------------------------

SERVE_WATCHED: Final = """
import collections, ctypes, gc, json, os, re, runpy, signal, sys, tempfile, tracemalloc
module, folder, mode, frames = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
taken = [0]
def rss_kb():
    with open("/proc/self/status") as status:
        return int(next(l for l in status if l.startswith("VmRSS:")).split()[1])
def heap():
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    path = os.path.join(folder, f"{module}-malloc_info.xml")
    stream = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    tail = open(path).read().rsplit("</heap>", 1)[-1]
    totals = dict(re.findall(r'<(?:total|system) type="(\\w+)"(?: count="\\d+")? size="(\\d+)"', tail))
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        sys._debugmallocstats()
        os.dup2(saved, 2)
        captured.seek(0)
        stats = captured.read().decode()
    arenas = int(re.search(r"# arenas allocated current\\s*=\\s*(\\d+)", stats).group(1))
    with open("/proc/self/smaps_rollup") as rollup:
        mapped = {l.split(":")[0]: int(l.split()[1]) for l in rollup if l.endswith("kB\\n")}
    free = int(totals["fast"]) + int(totals["rest"])
    return {"malloc_arenas_kb": int(totals["current"]) // 1024,
            "malloc_free_kb": free // 1024, "malloc_mmap_kb": int(totals["mmap"]) // 1024,
            "pymalloc_arenas_kb": arenas * 1024, "pymalloc_blocks": sys.getallocatedblocks(),
            "anonymous_kb": mapped.get("Anonymous"), "rss_kb": mapped.get("Rss")}
def largest(objects):
    sized = [o for o in objects if isinstance(o, (dict, list, set, collections.deque))]
    sized.sort(key=len, reverse=True)
    found = []
    for o in sized[:12]:
        first = next(iter(o), None)
        found.append([type(o).__qualname__, len(o), repr(first)[:60], owner(o)])
    return found
def owner(o):
    for referrer in gc.get_referrers(o):
        if isinstance(referrer, dict):
            for holder in gc.get_referrers(referrer):
                if getattr(holder, "__dict__", None) is referrer:
                    key = next((k for k, v in referrer.items() if v is o), "?")
                    return f"{type(holder).__module__}.{type(holder).__qualname__}.{key}"
            key = next((k for k, v in referrer.items() if v is o), None)
            if key is not None:
                return f"dict[{key!r}]"[:80]
        elif hasattr(referrer, "__slots__"):
            return f"{type(referrer).__module__}.{type(referrer).__qualname__} (slots)"
    return "?"
def census():
    gc.unfreeze()  # count what start-up froze too (a cache made then would hide otherwise)
    objects = gc.get_objects()
    counts = collections.Counter(type(o).__qualname__ for o in objects)
    found = {"objects": sum(counts.values()), "gc_count": gc.get_count(),
             "rss_kb": rss_kb(), "heap": heap(), "by_type": dict(counts.most_common(80)),
             "largest": largest(objects)}
    del objects
    return found
def on_signal(signum, frame):
    if mode == "trace" and not tracemalloc.is_tracing():
        tracemalloc.start(frames)
        return
    taken[0] += 1
    path = os.path.join(folder, f"{module}-{taken[0]}.{mode}")
    if mode == "trace":
        tracemalloc.take_snapshot().dump(path + ".part")
    else:
        found = census()
        if signum == signal.SIGUSR2:
            found["collected"] = gc.collect()
            found["after_collect"] = census()
        with open(path + ".part", "w") as out:
            json.dump(found, out)
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR1, on_signal)
signal.signal(signal.SIGUSR2, on_signal)
sys.argv = [module]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""
"""A watched service, `python -c SERVE_WATCHED module folder mode frames`: `python -m module`,
and on SIGUSR1 a numbered file in `folder`, complete once under its name. `mode` "trace":
the first SIGUSR1 starts tracemalloc (once the service is up: tracing its start-up would
take minutes), each later one dumps a snapshot. `mode` "census": each SIGUSR1 writes the
live objects the collector tracks, counted by type, with `gc.get_count()` and the RSS; a
SIGUSR2 does the same, then a full `gc.collect()` and the census again."""


# -- the SMTP server ----------------------------------------------------------------------


class _Discard:
    """aiosmtpd handler: accept every message, keep only a count (the soak's own memory)."""

    def __init__(self) -> None:
        self.accepted = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.accepted += 1
        return "250 Message accepted for delivery"


@contextmanager
def discarding_smtp() -> Iterator[tuple[str, int, _Discard]]:
    handler = _Discard()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, handler
    finally:
        controller.stop()


# -- one service ----------------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    handled: int
    rss_kb: int


@dataclass
class Watched:
    """One service process, its metrics port and what was read of it."""

    process: ServiceProcess
    port: int
    samples: list[Sample] = field(default_factory=list)
    quarters: dict[float, Sample] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.process.name

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def handled(self) -> int:
        """Records the run loop finished (handled or dead-lettered), from `/metrics`."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            if family.name == HANDLED_METRIC:
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return int(total)

    def readiness(self) -> str | None:
        """None once `/readyz` answers 200, else what it says (or why it did not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5):
                return None
        except urllib.error.HTTPError as exc:  # 503: the failing checks
            return exc.read().decode(errors="replace")
        except OSError as exc:  # not listening yet
            return str(exc)


@dataclass(frozen=True)
class Watch:
    """`--trace` or `--census`: what the services write at each quarter, and where."""

    mode: str  # "trace" or "census"
    folder: Path

    def command(self, module: str) -> list[str]:
        arguments = [module, str(self.folder), self.mode, str(TRACE_FRAMES)]
        return [sys.executable, "-c", SERVE_WATCHED, *arguments]

    def path(self, module: str, number: int) -> Path:
        return self.folder / f"{module}-{number}.{self.mode}"

    def take(self, service: Watched, *, last: bool = False) -> None:
        """Ask `service` for its file of this quarter and wait until it is written."""
        path = self.path(service.process.definition.module, len(service.quarters))
        service.process.process.send_signal(signal.SIGUSR2 if last else signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing written by {service.name} at {path}")
            time.sleep(0.2)  # a snapshot takes seconds on a large heap; poll for the file

    def report(self, module: str) -> str:
        if self.mode == "trace":
            return traced_growth(self.path(module, 1), self.path(module, len(QUARTERS)))
        return census_growth(self.path(module, 1), self.path(module, len(QUARTERS)))


def start_service(
    definition: ServiceDef, env: dict[str, str], out: Path, watch: Watch | None
) -> Watched:
    port = free_port()
    env = {**env, "HTTP_PORT": str(port)}
    if watch is None:
        command = [sys.executable, "-m", definition.module]
    else:
        command = watch.command(definition.module)
    log = out / "logs" / f"{definition.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
    return Watched(ServiceProcess(definition, process, log), port)


def wait_ready(services: Sequence[Watched]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while waiting := {s.name: why for s in services if (why := s.readiness()) is not None}:
        for service in services:
            if service.process.exit_code() is not None:
                raise RuntimeError(f"{service.name} exited:\n{service.process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s: {waiting}")
        time.sleep(0.2)  # the next readiness probe; the loop polls a condition


# -- the run --------------------------------------------------------------------------------


def follow(
    services: Sequence[Watched],
    publisher: Publisher,
    total: int,
    bootstrap: str,
    watch: Watch | None,
) -> None:
    """Sample every service once a second until each group committed the whole stream."""
    readers = {
        s.name: GroupOffsets({"bootstrap.servers": bootstrap}, s.process.definition.group)
        for s in services
    }
    started = time.monotonic()
    last_line = 0.0
    try:
        while True:
            now = time.monotonic() - started
            for service in services:
                if (code := service.process.exit_code()) is not None:
                    raise RuntimeError(f"{service.name} exited {code}:\n{service.process.tail()}")
                sample = Sample(round(now, 1), service.handled(), service.rss_kb())
                service.samples.append(sample)
                for quarter in QUARTERS[:-1]:
                    if quarter not in service.quarters and sample.handled >= quarter * total:
                        service.quarters[quarter] = sample
                        if watch is not None:
                            watch.take(service)
            if publisher.error is not None:
                raise RuntimeError(f"the publisher failed: {publisher.error!r}")
            done = publisher.finished_at is not None and all(
                s.samples[-1].handled >= total and caught_up(readers[s.name], publisher.ends())
                for s in services
            )
            if now - last_line >= 10 or done:
                last_line = now
                print(
                    f"  {now:5.0f} s  published {publisher.published:>7,}  " + progress(services),
                    flush=True,
                )
            if done:
                for service in services:
                    service.quarters[1.0] = service.samples[-1]
                    if watch is not None:
                        watch.take(service, last=True)
                return
            time.sleep(SAMPLE_EVERY_S)  # the sampling period; the loop polls a condition
    finally:
        for reader in readers.values():
            reader.close()


def caught_up(reader: GroupOffsets, ends: Mapping[TopicPartition, int]) -> bool:
    """Whether the group committed every end (a busy coordinator may not answer: not yet)."""
    try:
        return lag(ends, reader.read(ends)) == 0
    except TransientError:
        return False


def progress(services: Sequence[Watched]) -> str:
    return "  ".join(
        f"{s.name} {s.samples[-1].handled:>7,} ev {s.samples[-1].rss_kb / 1024:6.1f} MB"
        for s in services
    )


def table(services: Sequence[Watched], total: int) -> str:
    heads = [f"{int(q * 100)}%" for q in QUARTERS]
    lines = [
        f"{'service':<13}" + "".join(f"{h:>22}" for h in heads) + f"{'Q1 -> end':>12}{'B/event':>9}"
    ]
    for s in services:
        cells = "".join(
            f"{s.quarters[q].handled:>10,} ev {s.quarters[q].rss_kb / 1024:6.1f} MB"
            for q in QUARTERS
        )
        first, last = s.quarters[QUARTERS[0]], s.quarters[1.0]
        growth_kb = last.rss_kb - first.rss_kb
        per_event = growth_kb * 1024 / max(1, last.handled - first.handled)
        lines.append(f"{s.name:<13}{cells}{growth_kb / 1024:>+9.1f} MB{per_event:>9.0f}")
    lines.append(f"({total:,} records published; RSS = VmRSS of the service process)")
    return "\n".join(lines)


def traced_growth(first_path: Path, last_path: Path, top: int = 12) -> str:
    """The allocation sites that grew most from the first quarter's snapshot to the last."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first = tracemalloc.Snapshot.load(str(first_path)).filter_traces(ignore)
    last = tracemalloc.Snapshot.load(str(last_path)).filter_traces(ignore)
    lines = [f"--- {last_path.stem}: growth from the first quarter to the end, by line ---"]
    grown = sorted(last.compare_to(first, "lineno"), key=lambda stat: -stat.size_diff)
    lines += [str(stat) for stat in grown[:top]]
    by_traceback = sorted(last.compare_to(first, "traceback"), key=lambda stat: -stat.size_diff)
    for stat in by_traceback[:3]:  # the batch in hand at the first quarter shows as shrinking
        lines.append(f"--- {stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+} blocks, from:")
        lines += stat.traceback.format(limit=TRACE_FRAMES, most_recent_first=True)[:24]
    return "\n".join(lines)


def census_growth(first_path: Path, last_path: Path, top: int = 15) -> str:
    """Live objects by type at the first quarter and the end, and after a full collection."""
    first, last = json.loads(first_path.read_text()), json.loads(last_path.read_text())
    after = last["after_collect"]
    lines = [
        f"--- {last_path.stem}: objects tracked by the collector {first['objects']:,} at the "
        f"first quarter, {last['objects']:,} at the end (gc counts {last['gc_count']}); "
        f"a full gc.collect() then freed {last['collected']:,} unreachable, leaving "
        f"{after['objects']:,} (RSS {last['rss_kb'] / 1024:.1f} -> {after['rss_kb'] / 1024:.1f} MB)"
    ]
    lines.append(f"  heap at the first quarter {first['heap']}")
    lines.append(f"  heap at the end            {last['heap']}")
    lines.append("  largest containers at the first quarter:")
    lines += [f"    {entry}" for entry in first["largest"]]
    lines.append("  largest containers at the end:")
    lines += [f"    {entry}" for entry in last["largest"]]
    grown = sorted(last["by_type"], key=lambda t: first["by_type"].get(t, 0) - last["by_type"][t])
    for name in grown[:top]:
        counts = (
            first["by_type"].get(name, 0),
            last["by_type"][name],
            after["by_type"].get(name, 0),
        )
        lines.append(
            f"  {name:<40} {counts[0]:>9,} -> {counts[1]:>9,}  after collect {counts[2]:>9,}"
        )
    return "\n".join(lines)


def stream(flows: int) -> list[OutboundRecord]:
    """One simulation of `flows` bookings, published as awkwardly as the chaos runs' (no poison)."""
    config = SimulationConfig(
        flows=flows, seed=22, duplicate_rate=0.02, republish_rate=0.01, reorder_rate=0.1
    )
    return generate(config).records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=63_000, help="~2.4 records each")
    parser.add_argument("--rate", type=int, default=300, help="records published per second")
    parser.add_argument("--only", action="append", choices=[d.name for d in SERVICES])
    hunt = parser.add_mutually_exclusive_group()
    hunt.add_argument("--trace", action="store_true", help="tracemalloc in each service")
    hunt.add_argument("--census", action="store_true", help="live objects by type in each")
    parser.add_argument("--out", type=Path, default=Path("bench-output/soak"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the services on the way out
    definitions = [d for d in SERVICES if not args.only or d.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    watch = None
    if args.trace or args.census:
        watch = Watch("trace" if args.trace else "census", (args.out / "watch").resolve())
        watch.folder.mkdir(exist_ok=True)
        for old in watch.folder.glob(f"*.{watch.mode}"):
            old.unlink()
    records = stream(args.flows)
    total = len(records)
    minutes = total / args.rate / 60
    print(
        f"{args.flows:,} flows, {total:,} records at {args.rate}/s: ~{minutes:.0f} min", flush=True
    )
    choice = choose_broker()
    print(f"broker: {choice.describe()}", flush=True)
    with (
        start_broker(choice) as broker,
        discarding_smtp() as (smtp_host, smtp_port, mailbox),
        tempfile.TemporaryDirectory() as data,
    ):
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=PARTITIONS)
        dlqs = [DEFAULT_TOPICS.dlq(d.group) for d in definitions]
        create_topics(bootstrap, dlqs, partitions=1)  # readiness checks the DLQ path
        services: list[Watched] = []
        try:
            for definition in definitions:
                extra = dict(TANSU_FAST_JOIN) if choice.kind == "tansu" else {}
                if definition.name == "notification":
                    extra |= {**NOTIFICATION_ENV, "SMTP_HOST": smtp_host}
                    extra["SMTP_PORT"] = str(smtp_port)
                url = f"sqlite:///{Path(data) / definition.name}.db"
                env = service_env(bootstrap, url, extra)
                services.append(start_service(definition, env, args.out, watch))
            wait_ready(services)
            if watch is not None and watch.mode == "trace":
                for service in services:  # start tracing, now that start-up is over
                    service.process.process.send_signal(signal.SIGUSR1)
            publisher = Publisher(bootstrap, records, args.rate)
            publisher.start()
            follow(services, publisher, total, bootstrap, watch)
            publisher.join()
        finally:
            codes = stop_all([s.process for s in services])
    print()
    print(table(services, total))
    print(f"emails accepted: {mailbox.accepted:,}; exit codes: {codes}")
    dump = {
        "events": total,
        "rate": args.rate,
        "services": {s.name: [asdict(x) for x in s.samples] for s in services},
    }
    (args.out / "soak.json").write_text(json.dumps(dump))
    if watch is not None:
        for service in services:
            print()
            print(watch.report(service.process.definition.module))


if __name__ == "__main__":
    main()
