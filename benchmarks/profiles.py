"""Where the time goes: a benchmark run under py-spy, summarised as two small tables.

    .venv/bin/python benchmarks/profiles.py [--only voyage ...] [--quick] [--out bench-output/profiles]

Runs each benchmark script (`benchmarks/<name>.py`, the same as `make bench`) under
`py-spy record --subprocesses --format raw`, sampling every Python thread 97 times a second,
and writes the raw stacks to `<out>/<name>.stacks` (load them in speedscope or
flamegraph.pl for the whole picture). Then it prints, per benchmark:

* **self**: the lines where samples landed, grouped by function. A line that calls into C
  (msgspec's decoder, librdkafka's consume, a database driver) carries that C time, which
  is what is wanted here: where to look, not a C profile;
* **inclusive**: the functions of the project's own packages, with every sample that had
  them anywhere on the stack.

Only stacks through the run loop and the SMTP threads (`FOCUS`) are summarised: the services' work, not the
benchmark's set-up, its bare anchor loops or the embedded broker. py-spy samples from outside the process (no
instrumentation), so the figures are the benchmark's, minus a few per cent of one core for
py-spy itself. It needs ptrace: as root, or `kernel.yama.ptrace_scope=0`.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = ("run_loop", "voyage", "analytics", "notification")
RATE_HZ = 97  # not a multiple of a timer tick, so the samples do not beat with one
OURS = ("common/", "voyage_consumer/", "analytics_consumer/", "notification_consumer/")
FOCUS = ("Runner.run", "Mailer._in_parallel.<locals>.run")
"""Only stacks through the run loop (and notification's SMTP threads) are summarised: the
services' work, not the benchmark's set-up (publishing, the bare loops, waiting for the
group) nor the embedded broker."""
FRAME = re.compile(r"(?P<function>.+) \((?P<file>.+):(?P<line>\d+)\)")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.function}"


def short(file: str) -> str:
    """A file relative to the project or to site-packages: `common/parsing.py`, `msgspec/...`."""
    root = f"{HERE.parent}/"
    if file.startswith(root):
        return file.removeprefix(root)
    return file.rsplit("site-packages/", 1)[-1]


def stacks(raw: str) -> Iterable[tuple[list[Frame], int]]:
    """(frames root first, samples) per line of py-spy's raw (collapsed) format."""
    for line in raw.splitlines():
        text, _, count = line.rpartition(" ")
        if not text or not count.isdigit():
            continue
        matches = (FRAME.fullmatch(part) for part in text.split(";"))
        frames = [Frame(m["function"], short(m["file"]), int(m["line"])) for m in matches if m]
        if frames:
            yield frames, int(count)


@dataclass
class Summary:
    total: int
    self_time: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]


def summarise(raw: str, top: int = 12) -> Summary:
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, count in stacks(raw):
        if not any(f.function in FOCUS for f in frames):
            continue
        total += count
        leaf[frames[-1].where] += count
        for where in {f.where for f in frames if f.file.startswith(OURS)}:
            inclusive[where] += count
    return Summary(total, leaf.most_common(top), inclusive.most_common(top))


def render(name: str, summary: Summary) -> str:
    def rows(items: list[tuple[str, int]]) -> list[str]:
        return [f"| `{where}` | {100 * n / max(summary.total, 1):.1f} % |" for where, n in items]

    lines = [
        f"### {name} ({summary.total} samples at {RATE_HZ} Hz)",
        "",
        "| self: where samples landed | share |",
        "|---|---:|",
        *rows(summary.self_time),
        "",
        "| inclusive: the project's functions | share |",
        "|---|---:|",
        *rows(summary.inclusive),
        "",
    ]
    return "\n".join(lines)


def record(name: str, out: Path, quick: bool, extra: Sequence[str]) -> Path:
    target = out / f"{name}.stacks"
    script = [sys.executable, str(HERE / f"{name}.py"), "--json", str(out / f"{name}.json")]
    if quick:
        script.append("--quick")
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--gil", "--subprocesses", "--format", "raw"]
    command += ["--rate", str(RATE_HZ)]
    command += ["--output", str(target), "--", *script, *extra]
    with (out / f"{name}.log").open("w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="repeatable")
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench-output/profiles"))
    args, extra = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sections = []
    for name in args.only or BENCHMARKS:
        print(f"{name}.py under py-spy ...", flush=True)
        section = render(name, summarise(record(name, args.out, args.quick, extra).read_text()))
        print(section, flush=True)
        sections.append(section)
    (args.out / "profiles.md").write_text("\n".join(sections))
    print(f"tables in {args.out / 'profiles.md'}, raw stacks in {args.out}/*.stacks")


if __name__ == "__main__":
    main()
