"""The runtime's public API (`common.api.PUBLIC`) compared with a previous release, by griffe.

Both sides are read from source, never imported: the release's `common/` comes out of git with
`git archive` (read-only for the repository), the other side is a directory (this checkout,
or another export). A name the release declared public must still be declared, still exist,
and griffe must find no breaking change in it (a removed or newly required parameter, a
changed constant, a removed member of a class...), unless the version says the release breaks
(MAJOR bumped, or MINOR while 0.x: docs/api.md).

The release to compare with is in release/api-baseline: a tag, used when the clone has it,
and the commit it names, which a full clone has even without tags.
"""

from __future__ import annotations

import io
import re
import runpy
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import griffe

ROOT: Final = Path(__file__).resolve().parents[2]
BASELINE_FILE: Final = ROOT / "release" / "api-baseline"
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")
_VERSION: Final = re.compile(r'^__version__ = "(\d+)\.(\d+)\.(\d+)"$', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Baseline:
    """The release the API is checked against: its tag and the commit the tag names."""

    tag: str
    commit: str

    def ref(self, repo: Path = ROOT) -> str:
        """The tag where `repo` has it, else the recorded commit."""
        found = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--verify", "-q", f"refs/tags/{self.tag}"],
            capture_output=True,
            check=False,
        )
        return self.tag if found.returncode == 0 else self.commit


def baseline(path: Path = BASELINE_FILE) -> Baseline:
    """release/api-baseline: `tag: NAME` and `commit: SHA` lines (and # comments)."""
    fields = dict(
        line.split(":", 1)
        for line in path.read_text().splitlines()
        if ":" in line and not line.startswith("#")
    )
    return Baseline(fields["tag"].strip(), fields["commit"].strip())


def export(repo: Path, ref: str, dest: Path) -> Path:
    """`common/` as committed at `ref` in `repo`, written under `dest`; `dest`."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", ref, "common"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def public_api(tree: Path) -> Mapping[str, tuple[str, ...]]:
    """`common.api.PUBLIC` of the source tree at `tree` (a plain data module, run alone)."""
    return cast(
        Mapping[str, tuple[str, ...]], runpy.run_path(str(tree / "common/api.py"))["PUBLIC"]
    )


def version(tree: Path) -> tuple[int, int, int]:
    """`common.__version__` of the source tree at `tree`."""
    found = _VERSION.search((tree / "common/__init__.py").read_text())
    assert found, f"no __version__ in {tree / 'common/__init__.py'}"
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def declares_a_break(old: tuple[int, int, int], new: tuple[int, int, int]) -> bool:
    """SemVer: MAJOR went up, or MINOR while MAJOR is 0."""
    return new[0] > old[0] or (new[0] == old[0] == 0 and new[1] > old[1])


def _load(tree: Path) -> griffe.Object | griffe.Alias:
    return griffe.load(
        "common",
        search_paths=[tree],
        allow_inspection=False,
        try_relative_path=False,
        resolve_aliases=True,
        resolve_external=False,
        modules_collection=griffe.ModulesCollection(),
    )


def _member(package: griffe.Object | griffe.Alias, module: str, name: str) -> griffe.Object | None:
    try:
        found = package[f"{module.removeprefix('common.')}.{name}"]
    except KeyError:
        return None
    return found.final_target if isinstance(found, griffe.Alias) else found


def breaking_changes(old_tree: Path, new_tree: Path) -> list[str]:
    """What breaks a consumer of `old_tree`'s public API in `new_tree`, one line each.

    griffe compares the two packages whole; of what it finds, what concerns a declared name
    (or a member of a declared class) is kept, keyed by where the name is defined.
    """
    old_api, new_api = public_api(old_tree), public_api(new_tree)
    old_package, new_package = _load(old_tree), _load(new_tree)
    found, defined = [], {}
    for module, names in old_api.items():
        for name in names:
            path = f"{module}.{name}"
            old = _member(old_package, module, name)
            if name not in new_api.get(module, ()):
                found.append(f"{path}: no longer declared in common/api.py")
            elif old is None:
                found.append(f"{path}: not found in the release")
            elif _member(new_package, module, name) is None:
                found.append(f"{path}: removed")
            else:
                defined[old.path] = path
    for breakage in griffe.find_breaking_changes(old_package, new_package):
        where = breakage.obj.path
        for target, path in defined.items():
            if where == target or where.startswith(target + "."):
                explained = _ANSI.sub("", breakage.explain(style=griffe.ExplanationStyle.ONE_LINE))
                found.append(f"{path}: {explained}")
                break
    return found
