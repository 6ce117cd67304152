"""The distributions as `make dist` builds them, once per session, for every packaging test."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests.deploy.deployment import ROOT

NAMES: Final = (
    "dreamscape-analytics",
    "dreamscape-dev",
    "dreamscape-notification",
    "dreamscape-runtime",
    "dreamscape-voyage",
)
"""Every distribution of distributions/, by its project name."""


@dataclass(frozen=True, slots=True)
class Built:
    """dist/ of one `make dist`: five wheels, five sdists, and how long the build took."""

    directory: Path
    seconds: float

    def wheel(self, name: str) -> Path:
        (found,) = self.directory.glob(f"{name.replace('-', '_')}-*-py3-none-any.whl")
        return found

    def sdist(self, name: str) -> Path:
        (found,) = self.directory.glob(f"{name.replace('-', '_')}-*.tar.gz")
        return found


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`make dist DIST=<temp>`: every wheel and sdist, built isolated and `twine check`ed."""
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    done = subprocess.run(
        ["make", "-s", "dist", f"DIST={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Built(out, time.monotonic() - started)
