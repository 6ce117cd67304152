"""docs/performance.md's benchmark figures, written from one results file.

    .venv/bin/python benchmarks/readme.py                  # write them from docs/bench-results.json
    .venv/bin/python benchmarks/readme.py --check          # exit 1 if they are stale
    .venv/bin/python benchmarks/readme.py --record bench-output [--note "..."]
                                                           # check in a run, then write them

A figure typed by hand into a page drifts from the run it came from; so the page holds only
what this script renders from `docs/bench-results.json`, between `<!-- bench:begin -->` and
`<!-- bench:end -->`, and `tests/unit/test_bench_table.py` fails when they differ.
`--record` makes that file from a `make bench` run (`bench-output/results.json` and
`run.json`): the rows, and when, on what and under which load they were measured, with an
optional note (what else ran on the machine). A quick run (`--quick`) is refused: its sizes
are for a smoke run, not for figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from results import REQUIRED_KEYS, goal_text, rate, read_rows, value_text, with_unit, write_json

ROOT: Final = Path(__file__).resolve().parents[1]
RESULTS: Final = ROOT / "docs" / "bench-results.json"
PERFORMANCE: Final = ROOT / "docs" / "performance.md"
BEGIN: Final = "<!-- bench:begin -->"
END: Final = "<!-- bench:end -->"


def load(path: Path = RESULTS) -> dict[str, Any]:
    """The checked-in results: `{"run": {...}, "results": [rows]}`."""
    document = json.loads(path.read_text())
    assert isinstance(document, dict), f"{path}: expected an object with run and results"
    return document


def record(out: Path, note: str | None) -> dict[str, Any]:
    """The document for `docs/bench-results.json` from a run's `results.json` and `run.json`."""
    run = json.loads((out / "run.json").read_text())
    if run.get("quick"):
        raise SystemExit(f"{out} holds a --quick run: its sizes are a smoke run, not figures")
    if note:
        run["note"] = note
    return {"run": run, "results": read_rows(out / "results.json")}


def _met(row: Mapping[str, Any]) -> str:
    met = row.get("goal_met")
    return "" if met is None else ("met" if met else "**not met**")


def _goal(row: Mapping[str, Any]) -> str:
    return goal_text(row).replace(">=", "≥") if row["goal_met"] is not None else "no goal"


def _measured(row: Mapping[str, Any]) -> str:
    return f"{value_text(row['events_per_s'], row['unit'])} {row['unit']}"


def _anchor(row: Mapping[str, Any]) -> str:
    return f"{row['anchor']}: {with_unit(row['anchor_events_per_s'], row['unit'])}"


def _when(run: Mapping[str, Any]) -> str:
    """When, on what and under which load, in one sentence (no final stop)."""
    load, cores = run["load_average"], run["machine"]["cores"]
    during = load["during_1min"]
    text = (
        f"{run['date'][:10]} on {cores} cores (commit {str(run.get('commit') or '?')[:7]}, "
        f"{run['duration_s'] // 60} min {run['duration_s'] % 60} s); 1-minute load average "
        f"{load['before'][0]} before, "
        f"{during['min']}-{during['max']} (mean {during['mean']}) during, {load['after'][0]} after"
    )
    if during["mean"] > cores:
        text += ": the machine was loaded by other work, so these figures are low"
    return text + (f". {run['note'].rstrip('.')}" if run.get("note") else "")


def _references(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The other loops of each script's run, once per script when its rows share them."""
    lines = []
    for script in dict.fromkeys(row["benchmark"] for row in rows):
        mine = [row for row in rows if row["benchmark"] == script and row.get("references")]
        distinct = {json.dumps(row["references"], sort_keys=True) for row in mine}
        for row in mine[:1] if len(distinct) == 1 else mine:
            where = f"`{script}`" + ("" if len(distinct) == 1 else f", {row['name']}")
            also = ", ".join(f"{name} {rate(value)}/s" for name, value in row["references"].items())
            lines.append(f"- {where}: {also}")
    return lines


def performance_block(document: Mapping[str, Any]) -> str:
    """docs/performance.md's figures: the table with databases and sizes, and the context."""
    run, rows = document["run"], document["results"]
    goals = [row for row in rows if row["goal_met"] is not None]
    met = sum(1 for row in goals if row["goal_met"])
    lines = [
        f"Measured with `make bench` {_when(run)}.",
        "",
        f"**Goals met: {met} of {len(goals)}.**",
        "",
        "| benchmark | measured | anchor, same run | ratio | goal | | records | database |",
        "|---|---:|---|---:|---|---|---:|---|",
    ]
    lines += [
        f"| {row['name']} | {_measured(row)} | {_anchor(row)} | {row['ratio']:.2f}x "
        f"| {_goal(row)} | {_met(row)} | {row['records']:,} | {row['database']} |"
        for row in rows
    ]
    if references := _references(rows):
        lines += ["", "Also measured in the same runs, over the same records:", "", *references]
    scale = [row for row in rows if row["benchmark"] == "scale_out.py"]
    if scale:
        lines += ["", "Scale-out, each instance's events/s over the common window:", ""]
        lines += [
            f"- {row['details']['instances']} instance(s): "
            + ", ".join(f"{value:,}" for value in row["details"]["per_instance_events_per_s"])
            for row in scale
        ]
    if rows:
        lines += ["", f"The broker of every row: {rows[0]['broker']}."]
    return "\n".join(lines)


def current(text: str) -> str:
    """What stands between the markers of `text` (without the newlines around it)."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the markers {BEGIN} / {END} are missing")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def splice(text: str, block: str) -> str:
    """`text` with `block` between its markers."""
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def missing_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """`name: key` for every required key a row lacks."""
    return [
        f"{row.get('name', '?')}: {key}" for row in rows for key in REQUIRED_KEYS if key not in row
    ]


PAGES: Final = {PERFORMANCE: performance_block}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is stale")
    parser.add_argument("--record", type=Path, help="a `make bench` output directory to check in")
    parser.add_argument("--note", help="with --record: a sentence, say what else ran meanwhile")
    args = parser.parse_args()
    if args.record:
        write_json(RESULTS, record(args.record, args.note))
    document = load()
    if missing := missing_keys(document["results"]):
        raise SystemExit(f"{RESULTS}: rows lack required keys: {missing}")
    stale = []
    for page, render in PAGES.items():
        text = page.read_text()  # read right before writing: others may edit the page
        block = render(document)
        if current(text) == block:
            continue
        stale.append(page.name)
        if not args.check:
            page.write_text(splice(text, block))
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run benchmarks/readme.py", file=sys.stderr)
        sys.exit(1)
    print(f"{'stale' if args.check else 'written'}: {', '.join(stale) or 'none'}")


if __name__ == "__main__":
    main()
