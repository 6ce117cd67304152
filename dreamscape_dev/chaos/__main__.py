"""`make chaos` / `python -m dreamscape_dev.chaos [--scenario NAME] [--rate N] [--out DIR]`.

Runs the scenarios on one environment (three Apache Kafka brokers, PostgreSQL, an SMTP
server), prints the table, writes `report.json` and `index.html`, and exits 1 if any
scenario lost or doubled an effect, mismatched a DLQ, or saw a service die.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dreamscape_dev.chaos import report
from dreamscape_dev.chaos.environment import Environment
from dreamscape_dev.chaos.harness import ScenarioResult, failed_result, run_scenario
from dreamscape_dev.chaos.scenarios import by_name


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dreamscape_dev.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--scenario",
        default="all",
        help="crash, broker, network, database, smtp, rebalance, poison, mixed, short or all",
    )
    parser.add_argument("--rate", type=int, default=250, help="records per second (default 250)")
    parser.add_argument("--out", type=Path, default=Path("chaos-output"))
    args = parser.parse_args(argv)
    try:
        scenarios = by_name(args.scenario, args.rate)
    except ValueError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    results: list[ScenarioResult] = []
    with Environment() as env:
        description = env.describe()
        say(f"chaos: {len(scenarios)} scenario(s) on {description}")
        for scenario in scenarios:
            say(
                f"  {scenario.name}: {scenario.records:,} records at {scenario.rate}/s, {len(scenario.faults)} fault(s)"
            )
            began = time.monotonic()
            try:
                result = run_scenario(env, scenario, args.out / scenario.name, say)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                result = failed_result(scenario, exc, time.monotonic() - began)
            results.append(result)
            say(f"  {scenario.name}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.0f} s")
            for check in result.verdict.checks:
                if not check.ok:
                    say(f"    FAIL {check.name}: {check.detail}")
    page = report.write(results, description, args.out)
    say("")
    say(report.table(results))
    ok = all(r.ok for r in results)
    say("")
    say(f"chaos {'OK' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s: {page}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
