"""A new team's first hour, through a real package index: install, generate, test, lint, type-check.

The session's pypiserver serves what `make dist` built, uploaded with twine, and sends what it
lacks on to PyPI; the session's `team` venv got the distributions from it alone
(tests/packaging/conftest.py). Here, in the team's directory, which cannot see this checkout:
`dreamscape new consumer trial-consumer` with the venv's own `dreamscape` (its default source:
the canonical git URL at tag v<version>, served by a tagged temporary clone of this
repository), `pip install --index-url <index> -e 'trial-consumer[dev]'`, then the generated
project's own pytest (on this session's broker), ruff, mypy (strict, as configured: the
runtime's types from the installed wheels) and lint-imports, all passing as generated.

One module and one venv: the slowest tests of the packaging tier. Their phases are timed
(the session's summary prints them) and docs/releasing.md quotes them.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import yaml

from common import __version__
from dreamscape_dev.new import REPOSITORY, release_tag
from tests.packaging.conftest import NAMES, Team, clean_env, timed
from tests.template.support import as_canonical, pytest_counts, release_clone

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generated(team: Team, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`dreamscape new consumer trial-consumer` with the venv's dreamscape, from the tagged
    git source (the canonical URL, served by a clone), then installed editable from the index."""
    upstream = release_clone(tmp_path_factory.mktemp("upstream") / "dreamscape")
    env = clean_env(**as_canonical(upstream))
    new = [str(team.bin / "dreamscape"), "new", "consumer", "trial-consumer"]
    timed("dreamscape new", new, team.home, env)
    timed("install the project", team.pip_install("-e", "trial-consumer[dev]"), team.home, env)
    return team.home / "trial-consumer"


class TestTheIndex:
    """What a team's pip sees."""

    def test_the_index_serves_every_distribution_at_the_version(self, index: str) -> None:
        """Each of the five project pages lists its wheel and sdist."""
        for name in NAMES:
            with urllib.request.urlopen(f"{index}{name}/", timeout=10) as page:
                body = page.read().decode()
            stem = name.replace("-", "_") + f"-{__version__}"
            assert f"{stem}-py3-none-any.whl" in body, name
            assert f"{stem}.tar.gz" in body, name

    def test_the_team_venv_has_the_runtime_from_the_index_not_this_checkout(
        self, team: Team
    ) -> None:
        """`common` and `dreamscape_dev` are imported from the venv's site-packages."""
        probe = "import common, dreamscape_dev as d; print(common.__file__, d.__file__)"
        done = timed("probe", [str(team.bin / "python"), "-c", probe], team.home, clean_env())
        assert all(path.startswith(str(team.home / "venv/lib/")) for path in done.stdout.split())


class TestTheGeneratedConsumer:
    """trial-consumer, generated from the tag and installed from the index: green as generated."""

    def test_the_answers_record_the_git_source_and_tag(self, generated: Path) -> None:
        """`_src_path` is the canonical URL, `_commit` the release tag; no local path anywhere."""
        text = (generated / ".copier-answers.yml").read_text()
        answers = yaml.safe_load(text)
        assert (answers["_src_path"], answers["_commit"]) == (REPOSITORY, release_tag())
        assert answers["runtime_version"] == __version__
        assert str(generated.parent) not in text
        assert "upstream" not in text

    def test_its_tests_pass(self, generated: Path, kafka_bootstrap_servers: str) -> None:
        """`pytest` in the project, on this session's broker: everything passes, nothing skipped."""
        env = clean_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap_servers)
        command = [
            str(generated.parent / "venv/bin/python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        done = timed("pytest", command, generated, env)
        counts = pytest_counts(done.stdout)
        assert set(counts) <= {"passed", "warning", "warnings"}, counts

    def test_ruff_mypy_and_lint_imports_find_nothing(self, generated: Path) -> None:
        """`ruff check`, `ruff format --check`, `mypy` (strict, as configured), `lint-imports`."""
        bin_ = generated.parent / "venv/bin"
        env = clean_env()
        timed("ruff", [str(bin_ / "ruff"), "check", "--no-cache", "."], generated, env)
        timed("ruff", [str(bin_ / "ruff"), "format", "--check", "--no-cache", "."], generated, env)
        mypy = timed("mypy", [str(bin_ / "mypy")], generated, env)
        assert "Success: no issues found" in mypy.stdout
        timed("lint-imports", [str(bin_ / "lint-imports")], generated, env)
