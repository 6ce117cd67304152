"""`dreamscape new consumer`: what it generates from which answers, and what it refuses.

No broker here: these tests render the template into temporary directories and read the
result (file tree, answers, imports, compose entry, Dockerfile). The generated project's
own tests, lint and type checks run in test_generated_project.py, updates in test_update.py.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import tomllib
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml

from common import __version__
from common.cli import _parser as dreamscape_parser
from common.cli import main as dreamscape
from dreamscape_dev.new import REPOSITORY, TEMPLATE, template_source
from tests.template.support import (
    NO_DATABASE,
    POSTGRES,
    ROOT,
    SQLITE,
    VARIANTS,
    Variant,
    commit_all,
    files,
    generate,
    git,
    run,
)

RUNTIME_ONLY = ("common",)
"""What a generated service package may import from this repository: the runtime alone."""


def recorded(project: Path) -> dict[str, Any]:
    """The project's .copier-answers.yml."""
    loaded: dict[str, Any] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return loaded


class TestWhatItGenerates:
    """The tree and the answers of each kind of consumer."""

    def test_a_sqlite_consumer_has_tables_migrations_and_tests(self, tmp_path: Path) -> None:
        """The SQLite variant gets the whole tree: the role files, schema, tests, deployment."""
        project = generate(SQLITE, tmp_path / "fraud-watch")
        package = "fraud_watch"
        assert files(project) == {
            ".copier-answers.yml",
            ".dockerignore",
            ".gitignore",
            "Dockerfile",
            "README.md",
            "compose.service.yaml",
            "pyproject.toml",
            *(
                f"{package}/{name}"
                for name in (
                    "__init__.py",
                    "__main__.py",
                    "cli.py",
                    "domain.py",
                    "handler.py",
                    "py.typed",
                    "service.py",
                    "settings.py",
                    "store.py",
                    "tables.py",
                    "migrations/__init__.py",
                    "migrations/r0001_initial.py",
                )
            ),
            "tests/__init__.py",
            "tests/test_domain.py",
            "tests/test_handler.py",
            "tests/test_service.py",
        }

    def test_a_consumer_without_a_database_has_no_schema(self, tmp_path: Path) -> None:
        """`--database none`: the store is Prometheus counters; no tables, no migrations."""
        project = generate(NO_DATABASE, tmp_path / "attempt-meter")
        generated = files(project)
        assert "class Counters" in (project / "attempt_meter/store.py").read_text()
        assert not {p for p in generated if re.search(r"tables|migrations|test_handler", p)}
        assert "migrate" not in (project / "attempt_meter/cli.py").read_text()

    def test_the_answers_are_recorded_for_updates(self, tmp_path: Path) -> None:
        """.copier-answers.yml keeps the answers (topics in lifecycle order) and the template."""
        flags = (
            "--topics",
            "refunded,initiated",
            "--database",
            "postgres",
            "--inbox",
            "business_key",
        )
        project = generate(Variant("audit-log", flags, "postgres", ()), tmp_path / "audit")
        assert recorded(project) | {"_src_path": "?"} == {
            "_src_path": "?",
            "name": "audit-log",
            "package": "audit_log",
            "description": "Totals of DreamScape payment events per event type and currency",
            "topics": ["initiated", "refunded"],
            "database": "postgres",
            "inbox": "business_key",
            "runtime_version": __version__,
        }
        assert recorded(project)["_src_path"] == str(TEMPLATE)

    def test_the_service_reads_the_chosen_topics_only(self, tmp_path: Path) -> None:
        """`EVENT_TYPES` in service.py names exactly the topics asked for, in lifecycle order."""
        project = generate(SQLITE, tmp_path / "fraud-watch")
        text = (project / "fraud_watch/service.py").read_text()
        assert "EVENT_TYPES: Final = (PAYMENT_COMPLETED, PAYMENT_REFUNDED)" in text

    def test_a_dash_or_underscore_name_gives_the_same_service(self, tmp_path: Path) -> None:
        """`fraud_watch` and `fraud-watch` both make package fraud_watch, script fraud-watch."""
        with_dash = generate(SQLITE, tmp_path / "a")
        underscored = Variant("fraud_watch", SQLITE.flags, "sqlite", SQLITE.topics)
        with_underscore = generate(underscored, tmp_path / "b")
        for name in files(with_dash) - {".copier-answers.yml"}:
            assert (with_dash / name).read_bytes() == (with_underscore / name).read_bytes(), name


class TestNothingIsCopiedFromTheRuntime:
    """A generated service imports `common` and nothing else of this repository."""

    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
    def test_service_modules_import_only_the_runtime(
        self, variant: Variant, tmp_path: Path
    ) -> None:
        """No module of the service package imports the tooling, a service or a test library."""
        project = generate(variant, tmp_path / variant.name)
        ours = {"common", "dreamscape_dev", "examples", "tests", "voyage_consumer"}
        ours |= {"notification_consumer", "analytics_consumer", "copier", "pytest"}
        imported: set[str] = set()
        for module in (project / variant.package).rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module.split(".")[0])
                elif isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
        assert imported & ours == {"common"}

    def test_no_generated_file_is_a_copy_of_a_runtime_file(self, tmp_path: Path) -> None:
        """Not one generated file has the content of a (non-empty) file of `common/`."""
        project = generate(POSTGRES, tmp_path / "refund-audit")
        runtime = {p.read_bytes() for p in (ROOT / "common").rglob("*.py")} - {b""}
        copied = [name for name in files(project) if (project / name).read_bytes() in runtime]
        assert copied == []


class TestWhatItRefuses:
    """Bad answers exit 2 with the reason, and leave nothing behind."""

    @pytest.mark.parametrize(
        ("argv", "reason"),
        [
            (["9lives"], "is not a service name"),
            (["Fraud-Watch"], "is not a service name"),
            (["common"], "taken by the runtime"),
            (["json"], "standard module"),
            (["fraud-watch", "--topics", "completed,shipped"], "not shipped"),
            (["fraud-watch", "--database", "none", "--inbox", "business_key"], "with a database"),
            (["fraud-watch", "--description", 'say "hi"'], "without quotes"),
        ],
    )
    def test_bad_answers_exit_2_naming_the_problem(
        self, argv: list[str], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each invalid answer is one line on stderr and exit code 2; no directory is made."""
        dest = tmp_path / "out"
        code = dreamscape(
            ["new", "consumer", *argv, "--dest", str(dest), "--template", str(TEMPLATE)]
        )
        assert code == 2
        assert reason in capsys.readouterr().err
        assert not dest.exists()

    def test_a_non_empty_destination_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Generating over existing files would mix them with the template's: refused."""
        (tmp_path / "keep.txt").write_text("mine")
        argv = ["new", "consumer", "fraud-watch", "--dest", str(tmp_path)]
        code = dreamscape([*argv, "--template", str(TEMPLATE)])
        assert code == 2
        assert "not empty" in capsys.readouterr().err
        assert files(tmp_path) == {"keep.txt"}

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            ({"name": "fraud--watch"}, "words joined by '-'"),
            ({"name": "common"}, "taken by the runtime"),
            ({"name": "fraud-watch", "topics": []}, "at least one topic"),
            ({"name": "fraud-watch", "description": "a \\ b"}, "without quotes"),
        ],
    )
    def test_copier_itself_refuses_what_the_command_refuses(
        self, data: dict[str, Any], reason: str, tmp_path: Path
    ) -> None:
        """`copier copy` of the template, without the command in front, checks the answers too."""
        with pytest.raises(ValueError, match=reason):
            copier.run_copy(str(TEMPLATE), tmp_path / "out", data=data, defaults=True, quiet=True)


class TestTheRepositoryIsTheTemplate:
    """The root copier.yml makes this repository a versioned template of the same questions."""

    def test_the_root_config_renders_what_the_template_directory_renders(
        self, tmp_path: Path
    ) -> None:
        """Rendered through ./copier.yml (a checkout's layout), the files are the same."""
        checkout = tmp_path / "checkout"
        shutil.copytree(TEMPLATE, checkout / "dreamscape_dev/templates/consumer")
        shutil.copy(ROOT / "copier.yml", checkout / "copier.yml")
        direct = generate(SQLITE, tmp_path / "direct")
        via_root = generate(SQLITE, tmp_path / "via-root", template=checkout)
        assert files(direct) == files(via_root)
        for name in files(direct) - {".copier-answers.yml"}:
            assert (direct / name).read_bytes() == (via_root / name).read_bytes(), name

    def test_a_checkout_with_the_template_committed_is_the_default_source(
        self, tmp_path: Path
    ) -> None:
        """A repository whose HEAD has copier.yml is used at that commit, which gets recorded."""
        checkout = tmp_path / "checkout"
        shutil.copytree(TEMPLATE, checkout / "dreamscape_dev/templates/consumer")
        shutil.copy(ROOT / "copier.yml", checkout / "copier.yml")
        commit_all(checkout, "the template")
        head = git(checkout, "rev-parse", "HEAD")
        assert template_source(checkout) == (str(checkout), head)

    def test_anything_else_is_the_canonical_repository_at_the_installed_release(
        self, tmp_path: Path
    ) -> None:
        """No git repository, a HEAD without copier.yml, or a directory inside another
        repository (a venv in a project): the canonical git URL at tag v<installed version>."""
        release = (REPOSITORY, f"v{__version__}")
        assert template_source(tmp_path) == release
        (tmp_path / "README").write_text("before the template")
        commit_all(tmp_path, "no template yet")
        (tmp_path / "copier.yml").write_text("uncommitted: true\n")
        assert template_source(tmp_path) == release
        inner = tmp_path / "lib" / "site-packages"
        inner.mkdir(parents=True)
        commit_all(tmp_path, "the template, at the top")
        assert template_source(inner) == release


class TestWhatTheProjectPins:
    """The generated project names the release it was generated from, and only its topics."""

    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
    def test_the_runtime_and_the_tooling_are_pinned_to_the_release(
        self, variant: Variant, tmp_path: Path
    ) -> None:
        """`dreamscape-runtime~=V` (and `dreamscape-dev~=V` for dev), V the installed version; the
        Dockerfile's RUNTIME too."""
        project = generate(variant, tmp_path / variant.name)
        declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        assert declared["dependencies"] == [f"dreamscape-runtime~={__version__}"]
        assert declared["optional-dependencies"]["dev"] == [f"dreamscape-dev~={__version__}"]
        dockerfile = (project / "Dockerfile").read_text()
        assert f'ARG RUNTIME="dreamscape-runtime~={__version__}"' in dockerfile
        assert (
            "dreamscape-payment-consumers" not in dockerfile + (project / "README.md").read_text()
        )

    def test_copiers_own_default_is_the_release(self) -> None:
        """`runtime_version`'s default in copier.yml (for `copier copy` by hand) is __version__."""
        questions = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
        assert questions["runtime_version"]["default"] == __version__

    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
    def test_the_readme_mentions_only_the_topics_it_consumes(
        self, variant: Variant, tmp_path: Path
    ) -> None:
        """Each consumed topic is named; no other topic, nor its event ('refund' without refunded)."""
        readme = (generate(variant, tmp_path / variant.name) / "README.md").read_text()
        words = {
            "initiated": r"\binitiat",
            "completed": r"\bcomplet",
            "failed": r"\bfail(?:ed|ure)\b|payment\.failed",
            "refunded": r"\brefund",
        }
        for topic, pattern in words.items():
            named = f"`dreamscape.payment.{topic}`" in readme
            assert named == (topic in variant.topics), topic
            if topic not in variant.topics:
                assert not re.search(pattern, readme, re.IGNORECASE), (
                    topic,
                    re.findall(pattern, readme, re.I),
                )


class TestDeploymentFiles:
    """The Dockerfile and the compose entry run the console script the project installs."""

    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
    def test_the_image_runs_the_console_script_as_a_non_root_user(
        self, variant: Variant, tmp_path: Path
    ) -> None:
        """CMD is the `[project.scripts]` entry of pyproject.toml; USER is numeric, not 0."""
        project = generate(variant, tmp_path / variant.name)
        scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts == {variant.name: f"{variant.package}.cli:main"}
        dockerfile = (project / "Dockerfile").read_text()
        assert f'CMD ["{variant.name}"]' in dockerfile
        [user] = re.findall(r"^USER (\d+):\d+$", dockerfile, re.MULTILINE)
        assert int(user) != 0
        assert "HEALTHCHECK" in dockerfile

    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
    def test_the_compose_entry_merges_into_the_repository_compose_file(
        self, variant: Variant, tmp_path: Path, docker_compose: str
    ) -> None:
        """`docker-compose -f compose.yaml -f compose.service.yaml config` accepts the pair."""
        project = generate(variant, tmp_path / variant.name)
        directory = {f"{variant.package.upper()}_DIR": str(project)}
        result = run(
            [
                docker_compose,
                "-f",
                "compose.yaml",
                "-f",
                str(project / "compose.service.yaml"),
                "config",
            ],
            ROOT,
            env={**directory, "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stderr
        service = yaml.safe_load(result.stdout)["services"][variant.name]
        assert service["build"]["context"] == str(project)
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        wanted = {"kafka", "topics"} | ({"postgres"} if variant.database == "postgres" else set())
        assert set(service["depends_on"]) == wanted
        assert ("DATABASE_URL" in service["environment"]) == (variant.database != "none")


class TestTheDocsCommands:
    """The `dreamscape new` lines shown in the docs are accepted by the command line."""

    def test_documented_new_commands_parse(self) -> None:
        """Every `dreamscape new ...` in README.md and docs/writing-a-consumer.md parses."""
        commands = []
        for doc in (ROOT / "README.md", ROOT / "docs/writing-a-consumer.md"):
            for line in doc.read_text().splitlines():
                if line.startswith("    ") and line.strip().startswith("dreamscape new"):
                    commands.append(line.strip())  # a line of a code block
                commands += re.findall(r"`(dreamscape new[^`]*)`", line)  # inline code
        assert len(commands) >= 6
        parser = dreamscape_parser()
        for command in commands:
            try:
                parser.parse_args(shlex.split(command, comments=True)[1:])
            except SystemExit:
                pytest.fail(f"the dreamscape CLI rejects: {command}")
