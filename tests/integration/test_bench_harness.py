"""The benchmark harness runs: every script imports, and one writes rows of the shared shape.

The benchmarks are scripts outside the packages, so nothing else would notice when a change
to `common` or a service breaks one (one did: `analytics.py` imported a function that had
moved). No figure is checked: a tiny run measures nothing, and speeds belong in benchmarks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS: Final = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS: Final = (
    "run_loop",
    "voyage",
    "analytics",
    "notification",
    "scale_out",
    "latency",
    "memory",
    "micro",
    "tracing",
    "soak",
    "profiles",
)


def test_every_benchmark_script_imports() -> None:
    """Each script, and the suite and README tooling, imports as it does when run."""
    modules = ", ".join((*SCRIPTS, "suite", "readme", "results"))
    subprocess.run(
        [sys.executable, "-c", f"import {modules}"], cwd=BENCHMARKS, check=True, timeout=60
    )


def test_a_tiny_voyage_run_writes_complete_rows(tmp_path: Path) -> None:
    """`voyage.py` over a few hundred records on SQLite writes a row with every required key."""
    out = tmp_path / "voyage.json"
    command = [sys.executable, str(BENCHMARKS / "voyage.py"), "--records", "300", "--no-postgres"]
    subprocess.run([*command, "--json", str(out)], check=True, timeout=90, capture_output=True)
    rows = json.loads(out.read_text())
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from results import REQUIRED_KEYS  # the scripts' own import
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert [row["name"] for row in rows] == ["voyage on SQLite"]
    assert set(REQUIRED_KEYS) <= set(rows[0])
