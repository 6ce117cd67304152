"""The distributions as `make dist` builds them, a package index serving them, and a team's
venv installed from that index only: each made once per session, for every packaging test.

The index is a local pypiserver (a PyPI package) on a free port: the built distributions are
uploaded to it with twine, and what it does not hold it sends on to PyPI (`--fallback-url`),
as a company proxy would. The venv (outside this checkout, created without pip: the suite's
pip installs into it with `--python`) gets the five distributions from that index alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from common import __version__
from dreamscape_dev.testing.proxy import free_port
from dreamscape_dev.testing.running import wait_until
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
    TIMINGS["make dist"] = time.monotonic() - started
    return Built(out, TIMINGS["make dist"])


FALLBACK: Final = "https://pypi.org/simple/"
TIMINGS: Final[dict[str, float]] = {}
"""Seconds per phase of the packaging tests (make dist, upload, installs, ...), printed at the
end of the session with `-s` and quoted in docs/releasing.md."""


def clean_env(**values: str) -> dict[str, str]:
    """Our environment without anything pointing at this checkout, its venv or a pip config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_", "PYTEST_", "KAFKA_"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    env |= {"PYTHONSAFEPATH": "1", "PIP_CONFIG_FILE": os.devnull}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.update(values)
    return env


def timed(
    phase: str,
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `command`, add its time to `phase`, fail with its output if it fails."""
    started = time.monotonic()
    done = subprocess.run(
        list(command),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    TIMINGS[phase] = TIMINGS.get(phase, 0.0) + time.monotonic() - started
    output = f"{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{phase}: {list(command)}\n{output}"
    return done


@dataclass(frozen=True, slots=True)
class Team:
    """A new team's directory and venv (outside this checkout), and the index it installs from."""

    home: Path
    index: str

    @property
    def bin(self) -> Path:
        return self.home / "venv" / "bin"

    def pip_install(self, *args: str) -> list[str]:
        """`pip install` into the team's venv, from the index only."""
        pip = [sys.executable, "-m", "pip", "--python", str(self.bin / "python"), "install"]
        return [*pip, "-q", "--no-compile", "--index-url", self.index, *args]


@pytest.fixture(scope="session")
def index(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The simple-index URL of a pypiserver holding every built distribution (uploaded)."""
    packages = tmp_path_factory.mktemp("index-packages")
    port = free_port()
    serve = [sys.executable, "-m", "pypiserver", "run", "-p", str(port), "-i", "127.0.0.1"]
    serve += ["-a", ".", "-P", ".", "--fallback-url", FALLBACK, str(packages)]
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(root + "simple/", timeout=2):
                return True
        except OSError:
            return False

    try:
        exited = lambda: None if server.poll() is None else "pypiserver exited"  # noqa: E731
        wait_until(answers, 30, "pypiserver to answer", abort=exited)
        upload = [sys.executable, "-m", "twine", "upload", "--non-interactive"]
        upload += ["--repository-url", root, "-u", "team", "-p", "unused"]
        upload += sorted(str(p) for p in built.directory.iterdir())
        timed("upload (twine)", upload, packages, os.environ)
        yield root + "simple/"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def team(index: str, tmp_path_factory: pytest.TempPathFactory) -> Team:
    """A venv with the five distributions `==<version>` and their dependencies, from the index."""
    team = Team(tmp_path_factory.mktemp("team"), index)
    env = clean_env()
    venv = [sys.executable, "-m", "venv", "--without-pip", str(team.home / "venv")]
    timed("venv", venv, team.home, env)
    wanted = [f"{name}=={__version__}" for name in NAMES]
    timed("install the five", team.pip_install(*wanted), team.home, env)
    return team


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The packaging phases' times, when any ran."""
    if TIMINGS:
        terminalreporter.section("packaging phases")
        for phase, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{phase:<28} {seconds:6.1f} s")
