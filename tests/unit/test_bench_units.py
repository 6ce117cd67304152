"""Rows of every unit print in their own precision: rates, latencies in ms, sizes in MB.

`benchmarks/results.py` holds every row's figure under `events_per_s`; the table and
docs/performance.md must not print a 12.3 ms latency as `12` or with `/s`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Final

import pytest

BENCHMARKS: Final = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def results() -> Iterator[ModuleType]:
    """`benchmarks/results.py`, imported as the scripts import it."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("results")
    finally:
        sys.path.remove(str(BENCHMARKS))


class TestValueText:
    def test_rates_keep_no_decimals(self, results: ModuleType) -> None:
        """A rate prints as before: thousands separated, no decimals, `/s` with an anchor."""
        assert results.value_text(12345.6, "events/s") == "12,346"
        assert results.with_unit(12345.6, "emails/s") == "12,346/s"

    def test_milliseconds_keep_one_decimal_below_100(self, results: ModuleType) -> None:
        """A latency below 100 ms keeps a decimal; above, whole milliseconds; the unit shown."""
        assert results.value_text(12.34, "ms") == "12.3"
        assert results.value_text(1234.5, "ms") == "1,234"
        assert results.with_unit(12.34, "ms") == "12.3 ms"

    def test_megabytes_keep_one_decimal(self, results: ModuleType) -> None:
        """A resident size always keeps one decimal."""
        assert results.with_unit(1234.56, "MB") == "1,234.6 MB"

    def test_table_shows_a_latency_row_with_its_unit_and_ratio(self, results: ModuleType) -> None:
        """A ms row's table line holds its figure, its unit, the anchor's figure and the ratio."""
        row = results.Result(
            name="voyage p50",
            benchmark="latency.py",
            events_per_s=38.44,
            unit="ms",
            anchor="run loop, no-op handler, p50",
            anchor_events_per_s=21.7,
            records=100,
        ).to_json()
        line = results.table([row]).splitlines()[-1]
        assert line.split()[2:4] == ["38.4", "ms"]
        assert "21.7" in line
        assert "1.77x" in line
