"""The benchmark figures of docs/performance.md are the checked-in results, rendered; the rows are complete.

`benchmarks/readme.py` writes docs/performance.md's latest figures from
docs/bench-results.json. These tests fail when the page was edited by
hand or the file changed without re-rendering (`.venv/bin/python benchmarks/readme.py`),
and when a row lacks a key of the results schema (`benchmarks/results.py`). No speed is
asserted anywhere: the figures are whatever the last run measured.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
BENCHMARKS: Final = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Iterator[tuple[ModuleType, ModuleType]]:
    """`benchmarks/readme.py` and `benchmarks/results.py`, imported as the scripts import them."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("readme"), importlib.import_module("results")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def document(bench: tuple[ModuleType, ModuleType]) -> dict[str, Any]:
    readme, _ = bench
    loaded: dict[str, Any] = readme.load()
    return loaded


class TestPages:
    def test_performance_figures_are_rendered_from_the_results(
        self, bench: tuple[ModuleType, ModuleType], document: dict[str, Any]
    ) -> None:
        """docs/performance.md's latest figures are exactly docs/bench-results.json rendered."""
        readme, _ = bench
        assert readme.current(readme.PERFORMANCE.read_text()) == readme.performance_block(document)

    def test_splice_replaces_only_the_block(self, bench: tuple[ModuleType, ModuleType]) -> None:
        """Splicing keeps the text around the markers and replaces what is between them."""
        readme, _ = bench
        text = f"before\n{readme.BEGIN}\nold\n{readme.END}\nafter\n"
        assert readme.splice(text, "new") == f"before\n{readme.BEGIN}\nnew\n{readme.END}\nafter\n"


class TestCheckedInResults:
    def test_every_row_has_the_required_keys(
        self, bench: tuple[ModuleType, ModuleType], document: dict[str, Any]
    ) -> None:
        """Each checked-in row carries every key of the results schema."""
        readme, _ = bench
        assert document["results"]
        assert readme.missing_keys(document["results"]) == []

    def test_ratios_and_verdicts_agree_with_the_figures(self, document: dict[str, Any]) -> None:
        """A row's ratio is its rate over its anchor's, and goal_met follows from its goals."""
        for row in document["results"]:
            assert row["ratio"] == pytest.approx(
                row["events_per_s"] / row["anchor_events_per_s"], rel=1e-2
            ), row["name"]
            goals = (row["goal_events_per_s"], row["goal_ratio"])
            if goals == (None, None):
                assert row["goal_met"] is None, row["name"]
                continue
            met = (goals[0] is None or row["events_per_s"] >= goals[0]) and (
                goals[1] is None or row["ratio"] >= goals[1]
            )
            assert row["goal_met"] is met, row["name"]

    def test_the_run_says_when_on_what_and_under_which_load(self, document: dict[str, Any]) -> None:
        """The run records its date, the machine's cores and the load average around it."""
        run = document["run"]
        assert run["date"]
        assert run["machine"]["cores"] >= 1
        assert set(run["load_average"]) == {"before", "during_1min", "after"}
        assert run["load_note"]
        assert run["quick"] is False


class TestResult:
    def test_json_has_the_required_keys(self, bench: tuple[ModuleType, ModuleType]) -> None:
        """A `Result` serialises to an object with every required key."""
        _, results = bench
        row = results.Result(
            name="x", benchmark="x.py", events_per_s=10.0, anchor="y", anchor_events_per_s=20.0,
            records=5,
        ).to_json()  # fmt: skip
        assert set(results.REQUIRED_KEYS) <= set(row)
        assert row["ratio"] == 0.5
        assert row["goal_met"] is None

    def test_a_goal_is_met_only_when_every_part_is(
        self, bench: tuple[ModuleType, ModuleType]
    ) -> None:
        """With a rate goal and a ratio goal, reaching the rate alone is not meeting the goal."""
        _, results = bench
        row = results.Result(
            name="x", benchmark="x.py", events_per_s=200.0, anchor="y", anchor_events_per_s=400.0,
            records=5, goal_events_per_s=150.0, goal_ratio=1.0,
        )  # fmt: skip
        assert row.goal_met is False
