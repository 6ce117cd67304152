"""The one shape every benchmark's figures take, so they can be printed, compared and published.

Each benchmark script builds `Result`s and hands them to `report()`, which prints one table
and, given `--json PATH`, writes the rows there as a JSON list. `benchmarks/suite.py`
(`make bench`) runs every script with `--json`, joins the lists into
`bench-output/results.json` and prints one table for all of them; `benchmarks/readme.py`
writes docs/performance.md's table from a checked-in copy (`docs/bench-results.json`).

A figure alone says little on a shared 2-core machine, so every row names its *anchor*: a
simpler loop over the same records, measured in the same run (the bare `consume()` loop, the
run loop with a no-op handler, a bare `smtplib` loop...). The ratio to it moves much less
between runs than the figure does. Where issue 25 sets a goal, the row carries it and says
whether it was met; no test ever asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, text

from common.db import make_engine
from dreamscape_dev.testing.broker import TANSU_VERSION

REQUIRED_KEYS: Final = (
    "name",
    "benchmark",
    "events_per_s",
    "unit",
    "anchor",
    "anchor_events_per_s",
    "ratio",
    "broker",
    "database",
    "records",
    "goal_events_per_s",
    "goal_ratio",
    "goal_met",
)
"""Keys every row has. `goal_*` are null where issue 25 sets no goal."""

BROKER: Final = f"embedded Tansu {TANSU_VERSION}"
"""The broker of every benchmark: `dreamscape_dev.testing.broker.EmbeddedBroker`."""

NO_DATABASE: Final = "none"
GOAL_SOURCE: Final = "issue 25"


@dataclass(frozen=True, slots=True)
class Result:
    """One benchmark row: a figure, what it was compared with in the same run, and its goal.

    The figure is a rate (`unit` "events/s", "emails/s") for most rows; a latency ("ms",
    `benchmarks/latency.py`) or a resident size ("MB") for others. It is held under the key
    `events_per_s` whatever its unit, so every row keeps one JSON shape; `ratio` is then the
    figure over its anchor's, where lower is better for "ms" and "MB".
    """

    name: str
    benchmark: str
    """The script that measured it (`voyage.py`), so a row can be measured again alone."""
    events_per_s: float
    anchor: str
    anchor_events_per_s: float
    records: int
    """How many records the timed run read."""
    database: str = NO_DATABASE
    broker: str = BROKER
    unit: str = "events/s"
    goal_events_per_s: float | None = None
    goal_ratio: float | None = None
    """A goal on `ratio` (the run loop: at least as fast as bare `consume()` + `json.loads`)."""
    references: Mapping[str, float] = field(default_factory=dict)
    """Other loops over the same records in the same run, by name: rates for context."""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.events_per_s / self.anchor_events_per_s if self.anchor_events_per_s else 0.0

    @property
    def goal_met(self) -> bool | None:
        """Whether every goal of the row was reached; None for a row without a goal."""
        if self.goal_events_per_s is None and self.goal_ratio is None:
            return None
        rate_ok = self.goal_events_per_s is None or self.events_per_s >= self.goal_events_per_s
        ratio_ok = self.goal_ratio is None or self.ratio >= self.goal_ratio
        return rate_ok and ratio_ok

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "benchmark": self.benchmark,
            "events_per_s": round(self.events_per_s, 1),
            "unit": self.unit,
            "anchor": self.anchor,
            "anchor_events_per_s": round(self.anchor_events_per_s, 1),
            "ratio": round(self.ratio, 3),
            "broker": self.broker,
            "database": self.database,
            "records": self.records,
            "goal_events_per_s": self.goal_events_per_s,
            "goal_ratio": self.goal_ratio,
            "goal_met": self.goal_met,
            "goal_source": GOAL_SOURCE if self.goal_met is not None else None,
            "references": {name: round(rate, 1) for name, rate in self.references.items()},
            "details": dict(self.details),
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark script shares: `--quick` and `--json PATH`."""
    parser.add_argument(
        "--quick", action="store_true", help="a reduced size: a smoke run, not a measurement"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the rows to this file (a JSON list)"
    )


def size(given: int | None, quick: bool, full: int, reduced: int) -> int:
    """The size to run: the one given on the command line, else the full or the quick one."""
    if given is not None:
        return given
    return reduced if quick else full


def report(results: Sequence[Result], json_path: Path | None) -> None:
    """Print `results` as a table; write them to `json_path` as a JSON list if given."""
    rows = [result.to_json() for result in results]
    print(table(rows), flush=True)
    if json_path is not None:
        write_rows(json_path, rows)


def write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    write_json(path, list(rows))


def write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results file: a JSON list, or an object holding one under `results`."""
    document = json.loads(path.read_text())
    rows = document["results"] if isinstance(document, dict) else document
    assert isinstance(rows, list), f"{path}: no list of results"
    return rows


def rate(value: float | None) -> str:
    """`12,345` (events/s are never worth decimals here); `-` for none."""
    return "-" if value is None or math.isnan(value) else f"{value:,.0f}"


def is_rate(unit: str) -> bool:
    """Whether a row of `unit` holds a rate (`events/s`, `emails/s`), not a size or a time."""
    return unit.endswith("/s")


def value_text(value: float | None, unit: str) -> str:
    """A row's figure in its unit's precision: rates as `rate()`, `12.3` ms below 100 ms
    (`1,234` above), MB always with one decimal; `-` for none."""
    if value is None or math.isnan(value):
        return "-"
    if unit == "MB" or (unit == "ms" and value < 100):
        return f"{value:,.1f}"
    return rate(value)


def with_unit(value: float | None, unit: str) -> str:
    """`12,345/s` for a rate, `12.3 ms` or `45.6 MB` otherwise: the figure of an anchor or goal."""
    text = value_text(value, unit)
    return f"{text}/s" if is_rate(unit) else f"{text} {unit}"


def goal_text(row: Mapping[str, Any]) -> str:
    """The row's goal in words: `>= 15,000/s`, `>= 150,000/s and >= 1.0x`, or `-`."""
    parts = []
    if row.get("goal_events_per_s") is not None:
        parts.append(f">= {with_unit(row['goal_events_per_s'], str(row['unit']))}")
    if row.get("goal_ratio") is not None:
        parts.append(f">= {row['goal_ratio']:.1f}x")
    return " and ".join(parts) or "-"


def met_text(row: Mapping[str, Any]) -> str:
    met = row.get("goal_met")
    return "-" if met is None else ("met" if met else "NOT met")


def table(rows: Iterable[Mapping[str, Any]]) -> str:
    """A plain-text table of results, one row each, for the terminal."""
    header = (
        "benchmark",
        "value",
        "unit",
        "anchor (same run)",
        "anchor value",
        "ratio",
        "goal",
        "met",
    )
    lines = [
        (
            str(row["name"]),
            value_text(row["events_per_s"], str(row["unit"])),
            str(row["unit"]),
            str(row["anchor"]),
            value_text(row["anchor_events_per_s"], str(row["unit"])),
            f"{row['ratio']:.2f}x",
            goal_text(row),
            met_text(row),
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    numeric = {1, 4, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(cells) for cells in lines)])


def describe_database(engine: Engine) -> str:
    """The engine's database and the durability settings its figures depend on.

    Read from the server, not assumed: the embedded PostgreSQL of the tests runs with fsync
    off, a developer's own server probably does not, and that changes the figures.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            journal = connection.execute(text("PRAGMA journal_mode")).scalar()
            synchronous = connection.execute(text("PRAGMA synchronous")).scalar()
            level = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(synchronous, synchronous)
            return f"SQLite {sqlite3.sqlite_version} (file, journal={journal}, synchronous={level})"
        version = connection.execute(text("SHOW server_version")).scalar()
        fsync = connection.execute(text("SHOW fsync")).scalar()
        commit = connection.execute(text("SHOW synchronous_commit")).scalar()
    return f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={commit})"


def describe_url(url: str) -> str:
    """`describe_database` of the database at `url`, on an engine of its own."""
    engine = make_engine(url)
    try:
        return describe_database(engine)
    finally:
        engine.dispose()
