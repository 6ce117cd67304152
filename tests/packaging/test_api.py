"""The runtime's public API (common/api.py, docs/api.md): kept since the previous release, and
all a generated consumer imports.

The previous release is release/api-baseline (its tag, else its commit); the comparison is
griffe's (tests/packaging/api_check.py). One test commits a break in a temporary clone and
checks it is reported: the check can fail. Nothing here writes to this checkout's git.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from common.api import PUBLIC
from tests.packaging.api_check import (
    ROOT,
    baseline,
    breaking_changes,
    declares_a_break,
    export,
    version,
)
from tests.template.support import VARIANTS, commit_all, generate, git


def imported_from_common(source: str) -> set[str]:
    """`module.name` for each name of `common` the source uses (`from common.x import y`, or
    `from common import x` then `x.y`)."""
    tree = ast.parse(source)
    used, modules = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "common":
                modules |= {a.asname or a.name: f"common.{a.name}" for a in node.names}
            elif node.module.startswith("common."):
                used |= {f"{node.module}.{a.name}" for a in node.names}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            used.add(f"{modules[node.value.id]}.{node.attr}")
    return used


class TestAgainstThePreviousRelease:
    """No declared name lost or broken since release/api-baseline."""

    def test_nothing_declared_public_broke(self, tmp_path: Path) -> None:
        """griffe finds no breaking change in a declared name (unless the version declares one)."""
        release = export(ROOT, baseline().ref(), tmp_path)
        if declares_a_break(version(release), version(ROOT)):
            pytest.skip(f"{version(ROOT)} is a breaking release after {version(release)}")
        assert breaking_changes(release, ROOT) == []

    def test_the_baseline_tag_names_the_recorded_commit(self) -> None:
        """Where the clone has the tag, it points at the commit release/api-baseline records."""
        recorded = baseline()
        if recorded.ref() != recorded.tag:
            pytest.skip(f"this clone has no tag {recorded.tag}: the commit is used")
        assert git(ROOT, "rev-parse", f"{recorded.tag}^{{commit}}") == recorded.commit

    def test_a_changed_signature_is_reported(self, tmp_path: Path) -> None:
        """In a clone, a commit giving make_engine a required parameter fails the check, against
        the tag and (the tag deleted) against the recorded commit alone."""
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
        db = clone / "common/db.py"
        db.write_text(
            re.sub(r"^def make_engine\(", "def make_engine(pool: int, ", db.read_text(), flags=re.M)
        )
        commit_all(clone, "make_engine needs a pool")
        head = export(clone, "HEAD", tmp_path / "head")
        recorded = baseline()
        releases = [export(clone, recorded.ref(clone), tmp_path / "by-tag")]
        if recorded.ref(clone) == recorded.tag:
            git(clone, "tag", "-d", recorded.tag)
            assert recorded.ref(clone) == recorded.commit
            releases.append(export(clone, recorded.commit, tmp_path / "by-commit"))
        for release in releases:
            found = breaking_changes(release, head)
            assert any(line.startswith("common.db.make_engine: ") for line in found), found

    def test_a_name_dropped_from_the_declaration_is_reported(self, tmp_path: Path) -> None:
        """Removing `make_engine` from common/api.py is itself a break."""
        shutil.copytree(ROOT / "common", tmp_path / "common")
        api = tmp_path / "common/api.py"
        api.write_text(api.read_text().replace('        "make_engine",\n', ""))
        assert breaking_changes(ROOT, tmp_path) == [
            "common.db.make_engine: no longer declared in common/api.py"
        ]

    def test_only_a_major_or_a_0x_minor_bump_declares_a_break(self) -> None:
        """0.2.0 to 0.3.0 or 1.0.0 may break; 0.2.0 to 0.2.1, 1.2.0 to 1.3.0 may not."""
        assert declares_a_break((0, 2, 0), (0, 3, 0))
        assert declares_a_break((0, 2, 0), (1, 0, 0))
        assert not declares_a_break((0, 2, 0), (0, 2, 1))
        assert not declares_a_break((1, 2, 0), (1, 3, 0))


class TestWhatConsumersImport:
    """The declared API is what the template and the guide's example use, and all they use."""

    def test_generated_consumers_and_the_example_import_only_the_public_api(
        self, tmp_path: Path
    ) -> None:
        """Every name of `common` a generated project (each variant) or examples/ uses is declared."""
        sources = [p for v in VARIANTS for p in generate(v, tmp_path / v.name).rglob("*.py")]
        sources += list((ROOT / "examples").rglob("*.py"))
        used = set().union(*(imported_from_common(p.read_text()) for p in sources))
        declared = {f"{module}.{name}" for module, names in PUBLIC.items() for name in names}
        assert used - declared == set()
