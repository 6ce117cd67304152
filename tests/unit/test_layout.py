"""One name per role (docs/writing-a-consumer.md, "Layout"): every service is laid out alike.

A newcomer who knows one service knows where everything is in the others: the command line
in `cli.py`, the settings in `settings.py`, the wiring in `service.py`, the pure core in
`domain.py`, the glue the run loop calls in `handler.py`, the tables in `tables.py`, the
database reads and writes in `store.py`, the migrations in `migrations/`. The services are
checked in the source tree, the consumer template (`dreamscape new consumer`) by the names
its files render to.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
TEMPLATE_PACKAGE: Final = ROOT / "dreamscape_dev/templates/consumer/project/{{package}}"
TEMPLATE_TESTS: Final = TEMPLATE_PACKAGE.parent / "tests"

SERVICES: Final = ("voyage_consumer", "notification_consumer", "analytics_consumer")

ROLES: Final = (
    "__main__.py",
    "cli.py",
    "settings.py",
    "service.py",
    "domain.py",
    "handler.py",
    "tables.py",
    "store.py",
)

RETIRED: Final = (
    "models.py",
    "repository.py",
    "derivation.py",
    "notifications.py",
    "aggregate.py",
    "schema.py",
    "flush.py",
    "commands.py",
    "audit_cli.py",
    "apply.py",
)
"""Names the roles had before issue 24: a module under one of them is a second name for a role."""

REVISION: Final = re.compile(r"r\d{4}_\w+\.py")
WITH_A_DATABASE: Final = "{% if database != 'none' %}"
_CONDITIONAL: Final = re.compile(r"(\{% if [^%]+ %\})(.*?)\{% endif %\}")


@pytest.mark.parametrize("package", SERVICES)
class TestServiceLayout:
    def test_every_role_has_its_file(self, package: str) -> None:
        """Each service has the role files: __main__, cli, settings, service, domain, handler, tables, store."""
        missing = [name for name in ROLES if not (ROOT / package / name).is_file()]
        assert not missing, f"{package} lacks {missing}"

    def test_no_module_keeps_a_retired_role_name(self, package: str) -> None:
        """No service keeps a module under a role's old name (models.py, repository.py, ...)."""
        assert not [name for name in RETIRED if (ROOT / package / name).exists()]

    def test_migrations_are_numbered_revisions(self, package: str) -> None:
        """The Alembic revisions live in migrations/, named rNNNN_*.py."""
        migrations = ROOT / package / "migrations"
        assert (migrations / "__init__.py").is_file()
        revisions = [p.name for p in migrations.glob("*.py") if p.name != "__init__.py"]
        assert revisions
        assert all(REVISION.fullmatch(name) for name in revisions), revisions

    def test_main_only_calls_the_cli(self, package: str) -> None:
        """`python -m <package>` runs `cli.main` and holds nothing else (no parser, no wiring)."""
        tree = ast.parse((ROOT / package / "__main__.py").read_text(encoding="utf-8"))
        imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert {(n.module, tuple(a.name for a in n.names)) for n in imports} == {
            ("__future__", ("annotations",)),
            (f"{package}.cli", ("main",)),
        }
        assert not [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]

    def test_tables_define_the_schema(self, package: str) -> None:
        """`tables.py` holds SCHEMA, the common.schema.Schema the migrations build."""
        tree = ast.parse((ROOT / package / "tables.py").read_text(encoding="utf-8"))
        assigned = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        assert "SCHEMA" in assigned


def rendered(path: Path) -> tuple[str, str]:
    """The name a template file or directory renders to, and the condition it is rendered on."""
    name = path.name.removesuffix(".jinja")
    conditional = _CONDITIONAL.fullmatch(name)
    return (conditional[2], conditional[1]) if conditional else (name, "")


class TestTemplateLayout:
    """A generated project has the services' layout: the same role files, the same names."""

    def test_every_role_is_rendered_whatever_the_database(self) -> None:
        """__main__, cli, settings, service, domain, handler and store are in every variant."""
        names = dict(rendered(path) for path in TEMPLATE_PACKAGE.iterdir())
        always = [name for name in ROLES if name != "tables.py"]
        assert {name: names.get(name) for name in always} == dict.fromkeys(always, "")

    def test_tables_and_migrations_come_with_a_database(self) -> None:
        """tables.py and migrations/ are rendered exactly when the service has a database."""
        names = dict(rendered(path) for path in TEMPLATE_PACKAGE.iterdir())
        assert names["tables.py"] == WITH_A_DATABASE
        assert names["migrations"] == WITH_A_DATABASE
        [revision] = [rendered(p)[0] for p in TEMPLATE_PACKAGE.glob("*migrations*/r*")]
        assert REVISION.fullmatch(revision)

    def test_no_template_file_keeps_a_retired_role_name(self) -> None:
        """Nor does the template: no models.py, no counters.py beside the store."""
        names = {rendered(path)[0] for path in TEMPLATE_PACKAGE.iterdir()}
        assert not names & {*RETIRED, "counters.py"}

    def test_the_template_tests_are_named_after_the_modules_they_test(self) -> None:
        """tests/test_domain.py for the pure core, test_handler.py with a database, test_service.py."""
        names = dict(rendered(path) for path in TEMPLATE_TESTS.iterdir())
        assert names["test_domain.py"] == ""
        assert names["test_service.py"] == ""
        assert names["test_handler.py"] == WITH_A_DATABASE
        modules = {name for name in names if name.endswith(".py")}
        assert modules == {"__init__.py", "test_domain.py", "test_handler.py", "test_service.py"}
