"""The services' schema migrations (`common.schema`), on SQLite and on PostgreSQL.

For each service: migrating an empty database gives exactly the models' tables; a database
made by the earlier `create_all` start-up is adopted, its rows kept; the newest revision
downgrades; instances migrating at once do not race; a schema newer than the code, or one
not migrated while `DB_MIGRATE_ON_START=false`, stops the service with a clear message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from structlog.testing import capture_logs

from analytics_consumer.cli import main as analytics_main
from analytics_consumer.tables import SCHEMA as ANALYTICS
from common.db import make_engine
from common.schema import (
    Schema,
    SchemaMismatch,
    current,
    downgrade,
    migrate,
    open_database,
    require_current,
)
from common.settings import RunnerSettings
from dreamscape_dev.testing.proxy import TcpProxy
from notification_consumer.cli import main as notification_main
from notification_consumer.tables import SCHEMA as NOTIFICATION
from notification_consumer.tables import PaymentFact
from tests.integration.helpers import wait_until
from voyage_consumer.cli import main as voyage_main
from voyage_consumer.tables import SCHEMA as VOYAGE

pytestmark = pytest.mark.integration

SCHEMAS = [pytest.param(s, id=s.name) for s in (VOYAGE, NOTIFICATION, ANALYTICS)]


def _differences(engine: Engine, schema: Schema) -> list[Any]:
    """What alembic's autogenerate would change to make the database match the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": schema.version_table}
        )
        return list(compare_metadata(context, schema.metadata()))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _head(schema: Schema) -> str:
    head = schema.script().get_current_head()
    assert head is not None
    return head


@pytest.mark.parametrize("schema", SCHEMAS)
def test_migrating_an_empty_database_gives_exactly_the_models(
    schema: Schema, database_url: str
) -> None:
    """From nothing, `migrate` builds every model's table, index and constraint, and stops at head."""
    engine = make_engine(database_url)
    applied = migrate(engine, schema)
    assert applied == [rev.revision for rev in reversed(list(schema.script().walk_revisions()))]
    assert _differences(engine, schema) == []
    assert current(engine, schema) == (_head(schema),)
    assert migrate(engine, schema) == []  # a second start has nothing to do


OLD_ROWS: dict[str, tuple[str, str]] = {
    "voyage": ("processed_event", "'voyage-service', 'e-1', '2026-12-01 00:00:00'"),
    "notification": (
        "notification_payment (payment_id, booking_id, user_id, amount, currency)",
        "'p-1', 'b-1', 'u-1', '1250.00', 'EUR'",
    ),
    "analytics": ("analytics_offset", "'dreamscape.payment.completed', 0, 42"),
}
"""Per service, a table the earlier `create_all` made and a row it may hold."""


def _pre_migration_database(url: str, schema: Schema) -> Engine:
    """The schema as `create_all` made it before migrations: the baseline, with no version table.

    The baseline revision is that schema, frozen; building it from today's models instead
    would miss what later revisions change (notification's amounts were text then).
    """
    engine = make_engine(url)
    migrate(engine, schema, "0001_baseline")
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {schema.version_table}"))
    return engine


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_database_created_before_migrations_is_adopted_with_its_rows(
    schema: Schema, database_url: str
) -> None:
    """Tables made by the earlier `create_all` start-up are kept, rows and all, and brought to head."""
    engine = _pre_migration_database(database_url, schema)
    table, values = OLD_ROWS[schema.name]
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {table} VALUES ({values})"))
    assert current(engine, schema) == ()
    revisions = [rev.revision for rev in reversed(list(schema.script().walk_revisions()))]
    assert migrate(engine, schema) == revisions
    assert current(engine, schema) == (_head(schema),)
    assert _differences(engine, schema) == []
    with engine.connect() as connection:
        kept = connection.execute(text(f"SELECT count(*) FROM {table.split()[0]}")).scalar_one()
    assert kept == 1


def test_notification_amounts_stay_exact_through_the_money_revision(database_url: str) -> None:
    """`0002_money_amounts` turns the text amounts into exact decimals, scale and all."""
    engine = _pre_migration_database(database_url, NOTIFICATION)
    table, values = OLD_ROWS["notification"]
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {table} VALUES ({values})"))
    migrate(engine, NOTIFICATION)
    with Session(engine) as session:
        fact = session.get(PaymentFact, "p-1")
    assert fact is not None
    assert fact.amount == Decimal("1250.00")
    assert str(fact.amount) == "1250.00"


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_newest_revision_downgrades_and_upgrades_again(
    schema: Schema, database_url: str
) -> None:
    """Downgrading the head revision undoes it (for the baseline: every table); upgrading redoes it."""
    engine = make_engine(database_url)
    migrate(engine, schema)
    head = schema.script().get_revision(_head(schema))
    assert head is not None
    previous = head.down_revision
    assert previous is None or isinstance(previous, str)
    downgrade(engine, schema, previous or "base")
    assert current(engine, schema) == ((previous,) if previous else ())
    if previous is None:
        assert _tables(engine) <= {schema.version_table}
    migrate(engine, schema)
    assert _differences(engine, schema) == []


def test_instances_migrating_at_once_do_not_race(database_url: str) -> None:
    """Four instances starting together on an empty database: all succeed, one applies, one version row."""
    engines = [make_engine(database_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def start_instance(engine: Engine) -> None:
        start.wait()
        try:
            applied.append(migrate(engine, ANALYTICS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start_instance, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    revisions = len(list(ANALYTICS.script().walk_revisions()))
    assert sorted(len(a) for a in applied) == [0, 0, 0, revisions]
    with engines[0].connect() as connection:
        versions = connection.execute(text(f"SELECT * FROM {ANALYTICS.version_table}")).all()
    assert len(versions) == 1
    assert _differences(engines[0], ANALYTICS) == []


def test_services_sharing_a_database_keep_their_own_version_tables(database_url: str) -> None:
    """Three services migrating one database each record their revision in their own table."""
    engine = make_engine(database_url)
    for schema in (VOYAGE, NOTIFICATION, ANALYTICS):
        migrate(engine, schema)
    for schema in (VOYAGE, NOTIFICATION, ANALYTICS):
        assert current(engine, schema) == (_head(schema),)
        assert schema.version_table in _tables(engine)


def _settings(url: str, **values: Any) -> RunnerSettings:
    return RunnerSettings(database_url=url, **values)


def test_a_schema_newer_than_the_code_stops_the_service(sqlite_url: str) -> None:
    """A database at a revision this release does not know makes start-up raise, naming the revision."""
    engine = make_engine(sqlite_url)
    migrate(engine, VOYAGE)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VOYAGE.version_table} SET version_num = '0099_future'"))
    with pytest.raises(SchemaMismatch, match=r"0099_future.*newer release"):
        open_database(VOYAGE, _settings(sqlite_url))
    with pytest.raises(SchemaMismatch, match="0099_future"):
        open_database(VOYAGE, _settings(sqlite_url, db_migrate_on_start=False))


def test_without_migrate_on_start_an_unmigrated_database_is_refused(sqlite_url: str) -> None:
    """With `DB_MIGRATE_ON_START=false` start-up checks the schema and says to run `migrate`."""
    settings = _settings(sqlite_url, db_migrate_on_start=False)
    with pytest.raises(SchemaMismatch, match="run `voyage-consumer migrate`"):
        open_database(VOYAGE, settings)
    migrate(make_engine(sqlite_url), VOYAGE)
    require_current(open_database(VOYAGE, settings), VOYAGE)


MAINS: list[tuple[Schema, Callable[[list[str]], int]]] = [
    (VOYAGE, voyage_main),
    (NOTIFICATION, notification_main),
    (ANALYTICS, analytics_main),
]


@pytest.mark.parametrize(("schema", "main"), MAINS, ids=[s.name for s, _ in MAINS])
def test_the_migrate_command_applies_then_reports_up_to_date(
    schema: Schema,
    main: Callable[[list[str]], int],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`<service> migrate` applies the revisions once, then says the database is up to date."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["migrate"]) == 0
    assert f"{schema.name}: applied 0001_baseline" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.strip() == f"{schema.name}: up to date"
    assert current(make_engine(database_url), schema) == (_head(schema),)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migrate_sql_prints_the_ddl_and_changes_nothing(
    dialect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`migrate --sql` prints the CREATE statements and the version row, and touches no database."""
    url = (
        f"sqlite:///{tmp_path}/never.db"
        if dialect == "sqlite"
        else "postgresql://nobody@127.0.0.1:1/none"
    )
    monkeypatch.setenv("DATABASE_URL", url)
    assert analytics_main(["migrate", "--sql"]) == 0
    sql = capsys.readouterr().out
    assert "CREATE TABLE IF NOT EXISTS analytics_payment" in sql
    assert f"INSERT INTO {ANALYTICS.version_table}" in sql
    assert not (tmp_path / "never.db").exists()


def test_the_service_exits_2_on_a_schema_it_cannot_run_on(sqlite_url: str) -> None:
    """`analytics-consumer` on a newer schema exits 2 with one line naming the revision.

    A real process: `run_service` configures logging for the whole interpreter, which a
    test must not do to the ones after it.
    """
    engine = make_engine(sqlite_url)
    migrate(engine, ANALYTICS)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {ANALYTICS.version_table} SET version_num = '0042_x'"))
    env = {
        **os.environ,
        "DATABASE_URL": sqlite_url,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "HTTP_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "analytics_consumer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "0042_x" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
def test_start_up_waits_for_a_database_that_comes_up_late(
    postgres_url: str, tcp_proxy: Callable[[str, int], TcpProxy]
) -> None:
    """A server unreachable at start-up is retried with a warning, then migrated once it answers."""
    direct = make_url(postgres_url)
    assert direct.host is not None
    assert direct.port is not None
    proxy = tcp_proxy(direct.host, direct.port)
    proxy.cut()
    proxied = direct.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
    opened: list[Engine] = []
    with capture_logs() as logs:
        thread = threading.Thread(
            target=lambda: opened.append(
                open_database(VOYAGE, _settings(proxied, db_start_timeout_seconds=60))
            )
        )
        thread.start()
        wait_until(
            lambda: any(e["event"] == "database.waiting" for e in logs), 30, "a start-up retry"
        )
        assert opened == []
        proxy.restore()
        thread.join(timeout=60)
    assert len(opened) == 1
    assert current(opened[0], VOYAGE) == (_head(VOYAGE),)


def test_start_up_gives_up_after_its_timeout() -> None:
    """A database that never answers is retried with warnings, then its error ends start-up."""
    url = "postgresql://nobody@127.0.0.1:1/none"
    with capture_logs() as logs, pytest.raises(OperationalError, match=r"127\.0\.0\.1"):
        open_database(VOYAGE, _settings(url, db_start_timeout_seconds=0.5))
    assert [e["event"] for e in logs if e["event"] == "database.waiting"]
