"""`dreamscape new --update`: a later template version merged into a service with its own edits.

Copier versions a template by the git repository it is the root of, and so can only update
from one. Each test makes its own: the template directory copied into a temporary
repository and committed as `v1.0.0`, a service generated from that tag and committed in its
own repository, then the template changed and tagged `v2.0.0`; the last test lays a
repository out like this one (root copier.yml). Nothing touches this checkout's git.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plumbum
import pytest
import yaml

import dreamscape_dev.new
from common import __version__
from common.cli import main as dreamscape
from dreamscape_dev.new import REPOSITORY, TEMPLATE, release_tag, template_source
from tests.template.support import (
    ROOT,
    SQLITE,
    as_canonical,
    commit_all,
    generate,
    git,
    release_clone,
)

DOMAIN = "project/{{package}}/domain.py.jinja"
PURE = "Replace the totals with what your service decides, and keep this module pure."


def commit_of(project: Path) -> str:
    """The template version `.copier-answers.yml` records."""
    recorded: str = yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"]
    return recorded


def change_template(template: Path, old: str, new: str, *, tag: str) -> None:
    """Replace `old` by `new` in the domain template and commit the result as `tag`."""
    path = template / DOMAIN
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    commit_all(template, f"template {tag}", tag=tag)


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """The consumer template as the root of a git repository, at tag v1.0.0."""
    repo = tmp_path / "template"
    shutil.copytree(TEMPLATE, repo)
    commit_all(repo, "template v1", tag="v1.0.0")
    return repo


@pytest.fixture
def service(template: Path, tmp_path: Path) -> Path:
    """fraud-watch generated from v1.0.0 and committed in a repository of its own."""
    project = tmp_path / "service"
    argv = ["new", "consumer", SQLITE.name, *SQLITE.flags, "--dest", str(project)]
    assert dreamscape([*argv, "--template", str(template), "--vcs-ref", "v1.0.0"]) == 0
    commit_all(project, "generated")
    return project


def update(project: Path, *extra: str) -> int:
    """`dreamscape new --update --dest PROJECT ...`; its exit code."""
    return dreamscape(["new", "--update", "--dest", str(project), *extra])


class TestUpdate:
    """Template changes come in, the team's edits stay, clashes are marked."""

    def test_the_generated_service_records_the_template_version(
        self, service: Path, template: Path
    ) -> None:
        """`_commit` is the tag it was made from and `_src_path` the template repository."""
        recorded = yaml.safe_load((service / ".copier-answers.yml").read_text())
        assert (recorded["_commit"], recorded["_src_path"]) == ("v1.0.0", str(template))

    def test_a_template_change_is_merged_and_a_local_edit_kept(
        self, service: Path, template: Path
    ) -> None:
        """v1 to v2: the template's new line arrives, the team's own line stays, v2 is recorded."""
        domain = service / "fraud_watch/domain.py"
        domain.write_text(domain.read_text() + "\n\nTEAM_THRESHOLD = 3  # our own addition\n")
        commit_all(service, "our change")
        change_template(template, PURE, PURE + "\nKeep it small, too.", tag="v2.0.0")
        assert update(service) == 0
        merged = domain.read_text()
        assert "Keep it small, too." in merged
        assert "TEAM_THRESHOLD = 3  # our own addition" in merged
        assert "<<<<<<<" not in merged
        assert commit_of(service) == "v2.0.0"
        assert set(git(service, "diff", "--name-only").split()) == {
            ".copier-answers.yml",
            "fraud_watch/domain.py",
        }

    def test_an_update_to_a_named_version_stops_there(self, service: Path, template: Path) -> None:
        """`--vcs-ref v2.0.0` with v3.0.0 published: the service is at v2.0.0, without v3's line."""
        change_template(template, PURE, PURE + "\nSecond.", tag="v2.0.0")
        change_template(template, "\nSecond.", "\nSecond.\nThird.", tag="v3.0.0")
        assert update(service, "--vcs-ref", "v2.0.0") == 0
        text = (service / "fraud_watch/domain.py").read_text()
        assert ("Second." in text, "Third." in text) == (True, False)
        assert commit_of(service) == "v2.0.0"

    def test_a_clash_is_left_as_conflict_markers_and_exits_1(
        self, service: Path, template: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The team and the template rewrote the same line: both kept, marked, file named."""
        domain = service / "fraud_watch/domain.py"
        domain.write_text(domain.read_text().replace(PURE, "Ours: count refunds only."))
        commit_all(service, "our rewrite")
        change_template(template, PURE, "Theirs: a new sentence.", tag="v2.0.0")
        assert update(service) == 1
        text = domain.read_text()
        assert "<<<<<<< before updating" in text
        assert "Ours: count refunds only." in text
        assert "Theirs: a new sentence." in text
        assert "fraud_watch/domain.py" in capsys.readouterr().err

    def test_uncommitted_changes_stop_the_update(
        self, service: Path, template: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Copier refuses a dirty work tree (the merge must be reviewable): exit 2, files as they were."""
        domain = service / "fraud_watch/domain.py"
        domain.write_text(domain.read_text() + "# not committed\n")
        before = domain.read_text()
        change_template(template, PURE, PURE + " New.", tag="v2.0.0")
        assert update(service) == 2
        assert "dirty" in capsys.readouterr().err.lower()
        assert domain.read_text() == before
        assert commit_of(service) == "v1.0.0"

    def test_a_service_made_from_a_plain_directory_cannot_be_updated(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No `_commit` recorded: the command says why instead of half-updating."""
        project = generate(SQLITE, tmp_path / "plain")
        commit_all(project, "generated")
        assert update(project) == 2
        assert "records no template commit" in capsys.readouterr().err


class TestFromARepositoryCheckout:
    """The layout of this repository (root copier.yml, template in dreamscape_dev/) updates too."""

    def test_a_service_made_from_a_checkout_takes_its_next_commit(self, tmp_path: Path) -> None:
        """Generated at the checkout's commit (the default source), updated to its next one."""
        checkout = tmp_path / "checkout"
        shutil.copytree(TEMPLATE, checkout / "dreamscape_dev/templates/consumer")
        shutil.copy(ROOT / "copier.yml", checkout / "copier.yml")
        commit_all(checkout, "release 1")
        source, first = template_source(checkout)
        project = tmp_path / "service"
        argv = ["new", "consumer", SQLITE.name, *SQLITE.flags, "--dest", str(project)]
        assert dreamscape([*argv, "--template", source, "--vcs-ref", str(first)]) == 0
        assert commit_of(project) == git(checkout, "rev-parse", "--short", first)
        commit_all(project, "generated")
        domain = checkout / "dreamscape_dev/templates/consumer" / DOMAIN
        domain.write_text(domain.read_text().replace(PURE, PURE + " Release 2."))
        commit_all(checkout, "release 2")
        assert update(project) == 0  # the checkout's current commit, not its work tree
        assert "Release 2." in (project / "fraud_watch/domain.py").read_text()
        assert commit_of(project) == git(checkout, "rev-parse", "--short", "HEAD")


def next_patch(version: str) -> str:
    """0.2.0 -> 0.2.1."""
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


class TestBetweenReleaseTags:
    """As a team gets it: the tooling installed (not a checkout), the template fetched from the
    canonical git URL at the release's tag, then updated to the next release's tag."""

    @pytest.fixture
    def upstream(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A clone of this repository at tag v<version>, served under the canonical URL."""
        clone = release_clone(tmp_path / "upstream")
        for name, value in as_canonical(clone).items():
            monkeypatch.setenv(name, value)
            monkeypatch.setitem(plumbum.local.env, name, value)  # copier's git reads this copy
        monkeypatch.setattr(dreamscape_dev.new, "CHECKOUT", tmp_path / "site-packages")
        return clone

    def test_generated_at_one_tag_and_updated_to_the_next(
        self, upstream: Path, tmp_path: Path
    ) -> None:
        """Made with no --template: answers record the URL and v0.2.0, no path; a template
        change tagged v0.2.1 arrives with `--update`, which records v0.2.1."""
        project = tmp_path / "service"
        argv = ["new", "consumer", SQLITE.name, *SQLITE.flags, "--dest", str(project)]
        assert dreamscape(argv) == 0
        answers = (project / ".copier-answers.yml").read_text()
        recorded = yaml.safe_load(answers)
        assert (recorded["_src_path"], recorded["_commit"]) == (REPOSITORY, release_tag())
        assert str(tmp_path) not in answers
        assert str(ROOT) not in answers
        commit_all(project, "generated")
        later = release_tag(next_patch(__version__))
        if git(upstream, "tag", "--list", later):  # a real later release, cloned: ours replaces it
            git(upstream, "tag", "-d", later)
        domain = upstream / "dreamscape_dev/templates/consumer" / DOMAIN
        domain.write_text(domain.read_text().replace(PURE, PURE + " Later."))
        commit_all(upstream, f"release {later}", tag=later)
        assert update(project) == 0
        assert "Later." in (project / "fraud_watch/domain.py").read_text()
        recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
        assert (recorded["_src_path"], recorded["_commit"]) == (REPOSITORY, later)
