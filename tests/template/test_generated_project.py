"""A generated consumer works as generated: its tests pass, it lints, it type-checks, it runs.

Each kind of consumer (SQLite with the eventId inbox, PostgreSQL with business keys, no
database) is generated once per module into a temporary directory and used from there with
this venv, nothing installed. Its own test suite runs in a subprocess against this
session's broker (and PostgreSQL); then the service runs as `python -m PACKAGE`, the way
its console script runs it, on simulated flows, and must end with the simulator's totals.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from common.db import make_engine
from common.topics import PAYMENT_COMPLETED, PAYMENT_REFUNDED, Topics
from dreamscape_dev.simulator import Simulation, SimulationConfig, generate
from dreamscape_dev.testing.postgres import PostgresServer
from dreamscape_dev.testing.proxy import free_port
from dreamscape_dev.testing.running import wait_until
from tests.integration.helpers import produce
from tests.template.support import (
    BIN,
    NO_DATABASE,
    POSTGRES,
    SQLITE,
    VARIANTS,
    Variant,
    project_env,
    pytest_counts,
    run,
    runtime_for_mypy,
)
from tests.template.support import generate as generate_project

PARAMS = [
    pytest.param(v, id=v.name, marks=[pytest.mark.postgres] if v.database == "postgres" else [])
    for v in VARIANTS
]
Totals = tuple[dict[str, int], dict[tuple[str, str], Decimal]]


@pytest.fixture(scope="module", params=PARAMS)
def variant(request: pytest.FixtureRequest) -> Variant:
    """The kind of consumer under test."""
    chosen: Variant = request.param
    return chosen


@pytest.fixture(scope="module")
def project(variant: Variant, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The consumer generated once for this module, in a directory of its own."""
    return generate_project(variant, tmp_path_factory.mktemp("generated") / variant.name)


@pytest.fixture
def services_env(
    request: pytest.FixtureRequest, variant: Variant, project: Path, kafka_bootstrap_servers: str
) -> dict[str, str]:
    """The environment for the project's own tests: this session's broker and PostgreSQL."""
    values = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers}
    if variant.database == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        values |= {"TEST_DATABASE_URL": server.url(server.admin_database), "REQUIRE_POSTGRES": "1"}
    return project_env(project, **values)


class TestAsGenerated:
    """What a team gets before changing a line."""

    @pytest.mark.integration
    def test_its_own_tests_pass_and_none_is_skipped(
        self, variant: Variant, project: Path, services_env: dict[str, str]
    ) -> None:
        """`pytest` in the project: every test file's tests pass, the broker one on each database."""
        command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"]
        result = run(command, project, services_env)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        counts = pytest_counts(result.stdout)
        assert set(counts) <= {"passed", "warning", "warnings"}, counts
        passed = {
            line.split()[1] for line in result.stdout.splitlines() if line.startswith("PASSED ")
        }
        assert {name.split("::")[0] for name in passed} == {
            f"tests/{path.name}" for path in (project / "tests").glob("test_*.py")
        }
        databases = {"none": [""], "sqlite": [""], "postgres": ["[sqlite]", "[postgres]"]}
        service_test = "tests/test_service.py::test_simulated_flows_become_the_expected_totals_and_poison_the_dlq"
        assert {service_test + param for param in databases[variant.database]} <= passed

    def test_ruff_finds_nothing_to_fix_or_reformat(self, project: Path) -> None:
        """`ruff check` and `ruff format --check`, with the project's own configuration."""
        for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
            result = run([sys.executable, "-m", "ruff", *command], project)
            assert result.returncode == 0, result.stdout + result.stderr

    def test_mypy_strict_passes(
        self, project: Path, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """`mypy` with the project's configuration (strict, pydantic plugin) finds no error."""
        base = tmp_path_factory.getbasetemp()
        mypy_path = runtime_for_mypy(base / "mypy-runtime")
        env = project_env(project, MYPYPATH=str(mypy_path))
        cache = ["--cache-dir", str(base / "mypy-cache")]  # shared by the variants
        result = run([sys.executable, "-m", "mypy", *cache], project, env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Success: no issues found" in result.stdout

    def test_the_import_contract_holds(self, project: Path) -> None:
        """`lint-imports`: the service package imports the runtime, not the tooling."""
        result = run([str(BIN / "lint-imports")], project)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 kept, 0 broken" in result.stdout


# -- the service as a process -----------------------------------------------------------


@dataclasses.dataclass
class Process:
    """`python -m PACKAGE` started in the project, its output in a file."""

    popen: subprocess.Popen[bytes]
    output: Path

    def died(self) -> str | None:
        """Why waiting on it is pointless: it exited (with its last lines)."""
        code = self.popen.poll()
        lines = self.output.read_text(errors="replace").splitlines()[-12:]
        return None if code is None else f"exited {code}: " + "\n".join(lines)


@pytest.fixture
def start() -> Iterator[list[Process]]:
    """Started processes, killed after the test if it has not stopped them."""
    started: list[Process] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(10)


def launch(variant: Variant, project: Path, env: dict[str, str], log: Path) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", variant.package],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Process(popen, log)


def simulated(variant: Variant, topics: Topics) -> Simulation:
    """A few flows with poison; duplicates only for a service with an inbox."""
    duplicates = 0.0 if variant.database == "none" else 0.05
    republished = 0.1 if variant is POSTGRES else 0.0
    config = SimulationConfig(
        flows=30,
        seed=5,
        duplicate_rate=duplicates,
        republish_rate=republished,
        poison=3,
        topics=topics,
    )
    return generate(config)


def expected(variant: Variant, simulation: Simulation) -> Totals:
    """Events per type read, amounts of completed payments and refunds per currency."""
    events = {
        t: n for t, n in simulation.expected.events_by_type.items() if t in variant.event_types
    }
    sums = {
        PAYMENT_COMPLETED: simulation.expected.revenue,
        PAYMENT_REFUNDED: simulation.expected.refunded,
    }
    amounts = {
        (event_type, currency): amount
        for event_type, by_currency in sums.items()
        if event_type in variant.event_types
        for currency, amount in by_currency.items()
    }
    return events, amounts


def stored(variant: Variant, url: str) -> Totals:
    """The service's totals table, read with plain SQL (nothing of the project imported)."""
    engine = make_engine(url)
    events: Counter[str] = Counter()
    amounts: dict[tuple[str, str], Decimal] = {}
    try:
        with engine.connect() as connection:
            query = f"SELECT event_type, currency, events, amount FROM {variant.package}_total"
            for event_type, currency, count, amount in connection.execute(text(query)):
                events[event_type] += count
                if event_type in (PAYMENT_COMPLETED, PAYMENT_REFUNDED):
                    amounts[(event_type, currency)] = Decimal(str(amount))
    except Exception:  # the table does not exist before the service migrated
        return {}, {}
    finally:
        engine.dispose()
    return dict(events), amounts


def scraped(variant: Variant, port: int) -> Totals:
    """The service's counters as /metrics shows them (amounts as decimals of the floats)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            body = response.read().decode()
    except OSError:
        return {}, {}
    events: Counter[str] = Counter()
    amounts: dict[tuple[str, str], Decimal] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{variant.package}_events_total":
                events[labels["event_type"]] += int(sample.value)
            elif sample.name == f"{variant.package}_amount_total" and labels["event_type"] in (
                PAYMENT_COMPLETED,
                PAYMENT_REFUNDED,
            ):
                amounts[(labels["event_type"], labels["currency"])] = Decimal(sample.value)
    return dict(events), amounts


def service_env(
    variant: Variant, project: Path, topics: Topics, bootstrap: str, **values: str
) -> dict[str, str]:
    return project_env(
        project,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_SESSION_TIMEOUT_MS="1000",
        KAFKA_HEARTBEAT_INTERVAL_MS="100",
        KAFKA_GROUP_ID=f"{variant.name}-{uuid.uuid4().hex[:8]}",
        TOPIC_PREFIX=topics.prefix,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        POLL_TIMEOUT_SECONDS="0.1",
        **values,
    )


@pytest.mark.integration
class TestAsAProcess:
    """`python -m PACKAGE`: the real `run_service`, settings from the environment, SIGTERM."""

    def test_the_service_totals_simulated_flows_and_stops_cleanly(
        self,
        variant: Variant,
        project: Path,
        topics: Topics,
        kafka_bootstrap_servers: str,
        request: pytest.FixtureRequest,
        start: list[Process],
        tmp_path: Path,
    ) -> None:
        """Simulated flows end as the simulator's totals; SIGTERM then exits 0."""
        port = free_port()
        values = {"HTTP_PORT": str(port)}
        if variant.database != "none":
            url: str = request.getfixturevalue(
                "postgres_url" if variant.database == "postgres" else "sqlite_url"
            )
            values["DATABASE_URL"] = url
        env = service_env(variant, project, topics, kafka_bootstrap_servers, **values)
        process = launch(variant, project, env, tmp_path / "service.out")
        start.append(process)
        simulation = simulated(variant, topics)
        produce(kafka_bootstrap_servers, simulation.records)
        want = expected(variant, simulation)

        def done() -> bool:
            if variant.database == "none":
                got = scraped(variant, port)
                return got[0] == want[0] and got[1] == pytest.approx(want[1])
            return stored(variant, values["DATABASE_URL"]) == want

        wait_until(done, 60, f"the totals {want}", abort=process.died)
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(30) == 0, process.died()


class TestMigrateCommand:
    """`NAME migrate` (here `python -m PACKAGE migrate`) for a deploy job."""

    def test_migrate_applies_once_then_finds_nothing_to_do(
        self, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """The first run applies 0001_initial, the second says up to date; --sql prints DDL."""
        chosen = SQLITE
        project = generate_project(chosen, tmp_path_factory.mktemp("migrate") / chosen.name)
        env = project_env(project, DATABASE_URL=f"sqlite:///{tmp_path}/m.db")
        command = [sys.executable, "-m", chosen.package, "migrate"]
        first, second = run(command, project, env), run(command, project, env)
        assert (first.returncode, first.stdout.splitlines()[-1]) == (
            0,
            f"{chosen.package}: applied 0001_initial",
        )
        assert (second.returncode, second.stdout.splitlines()[-1]) == (
            0,
            f"{chosen.package}: up to date",
        )
        sql = run([*command, "--sql"], project, env)
        assert sql.returncode == 0
        assert f"CREATE TABLE {chosen.package}_total" in sql.stdout

    def test_a_postgres_service_refuses_to_migrate_without_database_url(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """No SQLite fallback: without DATABASE_URL, migrate and run exit 2 naming it."""
        project = generate_project(POSTGRES, tmp_path_factory.mktemp("pg") / POSTGRES.name)
        for argv in (["migrate"], []):
            result = run([sys.executable, "-m", POSTGRES.package, *argv], project)
            assert result.returncode == 2, result.stdout + result.stderr
            assert "DATABASE_URL" in result.stderr.upper()

    def test_a_service_without_a_database_has_no_migrate_command(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """`migrate` is not a command of a consumer that keeps no tables."""
        variant = NO_DATABASE
        project = generate_project(variant, tmp_path_factory.mktemp("none") / variant.name)
        result = run([sys.executable, "-m", variant.package, "migrate"], project)
        assert result.returncode == 2
        assert "invalid choice: 'migrate'" in result.stderr
