"""Generating consumers from the template in tests, and running what was generated.

Nothing generated is installed: a generated project runs from its directory with this
checkout's venv (its directory on `PYTHONPATH`, the runtime from the editable install), so
the suite checks the template exactly as a team gets it, with nothing added.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common import __version__
from common.cli import main as dreamscape
from dreamscape_dev.new import REPOSITORY, TEMPLATE, release_tag

ROOT: Final = Path(__file__).resolve().parents[2]
BIN: Final = Path(sys.executable).parent

GIT_IDENTITY: Final = {
    "GIT_AUTHOR_NAME": "Template Test",
    "GIT_AUTHOR_EMAIL": "template-test@example.invalid",
    "GIT_COMMITTER_NAME": "Template Test",
    "GIT_COMMITTER_EMAIL": "template-test@example.invalid",
}
"""Commits in the tests' own temporary repositories, never this checkout's."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One way to answer the template: a service name and the flags after it."""

    name: str
    flags: tuple[str, ...]
    database: str
    topics: tuple[str, ...]

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(f"payment.{topic}" for topic in self.topics)


SQLITE: Final = Variant(
    "fraud-watch",
    ("--topics", "completed,refunded", "--database", "sqlite"),
    "sqlite",
    ("completed", "refunded"),
)
POSTGRES: Final = Variant(
    "refund-audit",
    ("--database", "postgres", "--inbox", "business_key"),
    "postgres",
    ("initiated", "completed", "failed", "refunded"),
)
NO_DATABASE: Final = Variant(
    "attempt-meter",
    ("--topics", "initiated,failed", "--database", "none"),
    "none",
    ("initiated", "failed"),
)
VARIANTS: Final = (SQLITE, POSTGRES, NO_DATABASE)


def generate(variant: Variant, dest: Path, *, template: Path | str = TEMPLATE) -> Path:
    """`dreamscape new consumer ...` into `dest`, through the real command line; `dest`."""
    argv = ["new", "consumer", variant.name, *variant.flags, "--dest", str(dest)]
    code = dreamscape([*argv, "--template", str(template)])
    assert code == 0, f"dreamscape {' '.join(argv)} exited {code}"
    return dest


def files(directory: Path) -> set[str]:
    """Every file under `directory` (outside .git and caches), as relative POSIX paths."""
    skipped = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
    return {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and not skipped & set(path.relative_to(directory).parts)
    }


def project_env(project: Path, **values: str) -> dict[str, str]:
    """Our environment for a command run in a generated project: its directory importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "PYTEST_", "TEST_DATABASE_URL", "DATABASE_URL"))
    }
    env["PYTHONPATH"] = str(project)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


def run(
    command: Sequence[str],
    project: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`command` in `project`, output captured (these commands print little)."""
    return subprocess.run(
        list(command),
        cwd=project,
        env=dict(env or project_env(project)),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def runtime_for_mypy(directory: Path) -> Path:
    """A directory linking only `common` and `dreamscape_dev`, for `MYPYPATH`.

    mypy cannot follow setuptools' editable-install hook, and this checkout's root would also
    bring its own `tests` package, which would shadow the generated project's.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for package in ("common", "dreamscape_dev"):
        link = directory / package
        if not link.exists():
            link.symlink_to(ROOT / package, target_is_directory=True)
    return directory


def git(repo: Path, *args: str) -> str:
    """`git args...` in one of the tests' own repositories (never this checkout); stdout."""
    result = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def commit_all(repo: Path, message: str, *, tag: str | None = None) -> None:
    """Initialise `repo` if needed, commit everything in it, and tag the commit."""
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    if tag:
        git(repo, "tag", tag)


def pytest_counts(output: str) -> dict[str, int]:
    """The outcome counts of pytest's closing line (`12 passed, 1 skipped in 3.2s`)."""
    lines = [line for line in output.splitlines() if re.search(r"\bin [\d.]+s\b", line)]
    assert lines, f"no pytest summary line in:\n{output[-2000:]}"
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", lines[-1])}


def release_clone(dest: Path) -> Path:
    """A clone of this repository tagged as the installed release (`v0.2.0`), in `dest`.

    The template as it is in this work tree is committed on top first, so what is tested is
    what is here; the tag (copied from this repository, if it has one) is moved to that
    commit in the clone only. This checkout's git is only read.
    """
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, timeout=120)
    template = dest / "dreamscape_dev/templates/consumer"
    shutil.rmtree(template)
    shutil.copytree(TEMPLATE, template)
    shutil.copy(ROOT / "copier.yml", dest / "copier.yml")
    if git(dest, "status", "--porcelain"):
        commit_all(dest, "the template as in the work tree")
    git(dest, "tag", "-f", release_tag(__version__))
    return dest


def as_canonical(clone: Path) -> dict[str, str]:
    """Environment in which git fetches the canonical URL (`REPOSITORY`) from `clone`.

    git's `url.<base>.insteadOf`, set through GIT_CONFIG_* variables: copier clones the URL
    a team's `dreamscape new` would, and records that URL, never the clone's path.
    """
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{clone}.insteadOf",
        "GIT_CONFIG_VALUE_0": REPOSITORY,
    }
