"""`make bench`: every benchmark, one table, and `bench-output/results.json`.

    .venv/bin/python benchmarks/suite.py [--quick] [--only voyage ...] [--out bench-output]

Runs each benchmark script in a process of its own, one after the other (they would
compete for the same cores otherwise), with `--json` so each writes its rows in the shared
shape of `benchmarks/results.py`. Each script's own output goes to `bench-output/<name>.log`,
and one line per script says how it went. At the end: one table of every row, and

* `bench-output/results.json`: the rows, a JSON list (`results.REQUIRED_KEYS`);
* `bench-output/run.json`: when, on what (cores, Python, commit), for how long, and the
  load average before, during (sampled every 5 s) and after, since on a shared machine
  the figures mean little without it.

PostgreSQL is provisioned once here (`provision_postgres`) and handed to the scripts as
`TEST_DATABASE_URL`, so they share one server instead of starting one each. A script that
fails is reported and the others still run; the exit status is then 1.
`benchmarks/readme.py --record bench-output` turns a run into the checked-in figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results import read_rows, table, write_json, write_rows

from dreamscape_dev.testing.postgres import URL_ENV, optional_postgres

HERE = Path(__file__).parent
BENCHMARKS = ("run_loop", "voyage", "analytics", "notification", "scale_out", "latency", "memory")
"""In this order; `micro.py` (nanoseconds per piece, no broker) is not a throughput benchmark."""
LOAD_EVERY_S = 5.0


@contextmanager
def load_samples() -> Iterator[list[float]]:
    """The 1-minute load average every few seconds while the block runs."""
    samples: list[float] = [os.getloadavg()[0]]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(LOAD_EVERY_S):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        samples.append(os.getloadavg()[0])


def commit() -> str | None:
    """The checked-out commit (read only: `git rev-parse`), or None outside a clone."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return result.stdout.strip() or None


def run_one(name: str, out: Path, quick: bool, env: dict[str, str]) -> tuple[bool, float]:
    """Run `benchmarks/<name>.py --json out/<name>.json`; (succeeded, seconds)."""
    command = [sys.executable, str(HERE / f"{name}.py"), "--json", str(out / f"{name}.json")]
    if quick:
        command.append("--quick")
    if URL_ENV not in env and name in ("voyage", "analytics", "scale_out"):
        command.append("--no-postgres")
    started = time.monotonic()
    with (out / f"{name}.log").open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    return code == 0, time.monotonic() - started


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "min": round(min(samples), 2),
        "max": round(max(samples), 2),
        "mean": round(sum(samples) / len(samples), 2),
    }


def load_note(cores: int, during: dict[str, float]) -> str:
    """Says plainly whether other work loaded the machine: a mean 1-minute load above the
    cores means runnable processes waited for a core, ours among them."""
    if during["mean"] > cores:
        return (
            f"loaded: the 1-minute load average was {during['min']}-{during['max']} "
            f"(mean {during['mean']}) on {cores} cores during the run"
        )
    return f"1-minute load average {during['min']}-{during['max']} on {cores} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="repeatable")
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    args.out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    started_at = datetime.now(UTC)
    before = [round(value, 2) for value in os.getloadavg()]
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    began = time.monotonic()
    with optional_postgres() as server, load_samples() as samples:
        env = dict(os.environ)
        if server is not None:
            env[URL_ENV] = server.url(server.admin_database)
            print(f"PostgreSQL: {server.describe()}", flush=True)
        for name in names:
            print(f"{name}.py ...", end=" ", flush=True)
            ok, seconds = run_one(name, args.out, args.quick, env)
            print(f"{'done' if ok else 'FAILED'} in {seconds:.0f} s ({args.out / name}.log)")
            if ok:
                rows += read_rows(args.out / f"{name}.json")
            else:
                failed.append(name)
                tail = (args.out / f"{name}.log").read_text().splitlines()[-15:]
                print("\n".join(f"    {line}" for line in tail))
    after = [round(value, 2) for value in os.getloadavg()]
    during = summary(samples)
    write_rows(args.out / "results.json", rows)
    run = {
        "date": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began),
        "quick": args.quick,
        "benchmarks": names,
        "failed": failed,
        "machine": {
            "cores": cores,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "commit": commit(),
        "load_average": {"before": before, "during_1min": during, "after": after},
        "load_note": load_note(cores, during),
    }
    write_json(args.out / "run.json", run)
    print()
    print(table(rows))
    print(f"\n{run['load_note']}; rows in {args.out / 'results.json'}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
