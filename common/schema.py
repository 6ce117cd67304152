"""Opening a service's database and migrating its schema: the one way every service uses.

A service describes its database with a `Schema`: a name, the package holding its Alembic
revisions and the models those revisions must produce. `open_database` is what a service
calls at start-up: it builds the engine for `DATABASE_URL` (or the service's SQLite file),
waits a while for a server that is still starting, and brings the schema to the newest
revision this code knows, or, with `DB_MIGRATE_ON_START=false`, checks that someone did.

Why these rules:

* Each service has its own version table (`alembic_version_<name>`), so services sharing
  one database (or one SQLite file in a demo) migrate independently.
* Instances starting together do not race: on PostgreSQL the migration runs in one
  transaction (DDL is transactional there) after `pg_advisory_xact_lock`; on SQLite an
  exclusive lock on a file beside the database serialises them. The second instance then
  finds nothing left to do.
* A database at a revision this code does not know was migrated by a newer release: the
  instance stops (`SchemaMismatch`) rather than write into a schema it does not understand.
* The first revision of every service creates only the tables that do not exist, so a
  database made by the earlier `create_all` start-up is adopted as it is, not recreated.

Revisions are run without an `env.py`: the revision files are plain Alembic scripts, driven
from here through `EnvironmentContext`, so there is no second configuration to keep in step.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import structlog
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from common.db import TRANSIENT_DB_ERRORS, make_engine, normalise_url, table_of
from common.settings import ConfigurationError, RunnerSettings, load_settings, secret_value

HEAD: Final = "head"
_log = structlog.get_logger("common.schema")


class SchemaMismatch(Exception):  # noqa: N818 - the name says what the operator must fix
    """The database's schema is not the one this code needs, and migrating is not the answer."""


@dataclass(frozen=True, slots=True)
class Schema:
    """A service's database: its name, its revisions and the models they produce."""

    name: str
    """Short and stable: names the version table and the default SQLite file."""
    revisions: str
    """The package whose modules are the Alembic revisions (e.g. `voyage_consumer.migrations`)."""
    models: tuple[type[SQLModel], ...]
    """What the newest revision creates; `tests/integration/test_migrations.py` compares."""

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"

    @property
    def default_url(self) -> str:
        """Where the service keeps its data when `DATABASE_URL` is not set."""
        return f"sqlite:///data/{self.name}.db"

    def url(self, settings: RunnerSettings) -> str:
        """The database URL of `settings`, or the default one when it is blank."""
        return secret_value(settings.database_url) or self.default_url

    def metadata(self) -> MetaData:
        """The models' tables, alone in a MetaData (for comparing with a migrated database)."""
        metadata = MetaData()
        for model in self.models:
            table_of(model).to_metadata(metadata)
        return metadata

    def script(self) -> ScriptDirectory:
        directory = str(resources.files(self.revisions))
        return ScriptDirectory(directory, version_locations=[directory])


def open_database(schema: Schema, settings: RunnerSettings) -> Engine:
    """The service's engine, its schema migrated (or checked), once the server answers.

    A server that refuses connections is waited for up to `DB_START_TIMEOUT_SECONDS`, with
    backoff: in a `compose up` or a rolling restart the database may come up after the
    consumer. After that the error propagates and the process exits 1 for its supervisor to
    restart. `SchemaMismatch` is not waited out: no amount of waiting fixes it.
    """
    engine = make_engine(schema.url(settings))
    prepare = migrate if settings.db_migrate_on_start else require_current
    retrying = Retrying(
        retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),  # unreachable, not a schema error
        stop=stop_after_delay(settings.db_start_timeout_seconds),
        wait=wait_exponential(multiplier=0.25, max=2.0),
        before_sleep=lambda state: _log.warning(
            "database.waiting",
            schema=schema.name,
            attempt=state.attempt_number,
            error=str(state.outcome.exception() if state.outcome else "")[:300],
        ),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            prepare(engine, schema)
    return engine


def connect(url: str, schema: Schema) -> Engine:
    """An engine for `url` with `schema` migrated to the newest revision (tests, commands)."""
    engine = make_engine(url)
    migrate(engine, schema)
    return engine


def migrate(engine: Engine, schema: Schema, revision: str = HEAD) -> list[str]:
    """Apply the pending revisions up to `revision`, under the migration lock; the ids applied."""
    script = schema.script()
    applied: list[str] = []

    def upgrade(rev: Any, _context: MigrationContext) -> Any:
        _known_or_raise(script, schema, rev)
        steps = script._upgrade_revs(revision, rev)  # what `alembic upgrade` runs
        applied.extend(step.revision.revision for step in steps)
        return steps

    with engine.connect() as connection, _migration_lock(connection, engine, schema):
        _run(connection, schema, script, upgrade, destination=revision)
        connection.commit()
    if applied:
        _log.info("database.migrated", schema=schema.name, revisions=applied)
    return applied


def downgrade(engine: Engine, schema: Schema, revision: str) -> None:
    """Go back to `revision` (`base` for none): for tests and a release being rolled back."""
    script = schema.script()

    def steps(rev: Any, _context: MigrationContext) -> Any:
        return script._downgrade_revs(revision, rev)

    with engine.connect() as connection, _migration_lock(connection, engine, schema):
        _run(connection, schema, script, steps, destination=revision)
        connection.commit()


def current(engine: Engine, schema: Schema) -> tuple[str, ...]:
    """The revision(s) the database is at; empty before the first migration."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": schema.version_table}
        )
        return tuple(context.get_current_heads())


def require_current(engine: Engine, schema: Schema) -> None:
    """Raise `SchemaMismatch` unless the database is at this code's newest revision."""
    at = current(engine, schema)
    script = schema.script()
    _known_or_raise(script, schema, at)
    head = script.get_current_head()
    if at != (head,):
        raise SchemaMismatch(
            f"the {schema.name} database is at revision {', '.join(at) or 'none'}, this "
            f"release needs {head}: run `{schema.name}-consumer migrate` "
            "(or start one instance with DB_MIGRATE_ON_START=true)"
        )


def migration_sql(url: str, schema: Schema) -> str:
    """The SQL `migrate` would run on an empty database of `url`'s kind (`migrate --sql`)."""
    script = schema.script()
    buffer = io.StringIO()

    def upgrade(rev: Any, _context: MigrationContext) -> Any:
        return script._upgrade_revs(HEAD, rev)

    config = Config()
    with EnvironmentContext(
        config, script, fn=upgrade, as_sql=True, destination_rev=HEAD
    ) as environment:
        environment.configure(
            url=normalise_url(url),
            version_table=schema.version_table,
            output_buffer=buffer,
            transactional_ddl=True,
        )
        with environment.begin_transaction():
            environment.run_migrations()
    return buffer.getvalue()


def add_migrate_command(commands: Any) -> None:
    """Add `migrate [--sql]` to a service's sub-commands (an argparse subparsers object)."""
    migrate_parser = commands.add_parser(
        "migrate", help="apply the pending database migrations (--sql: print them instead)"
    )
    migrate_parser.add_argument(
        "--sql", action="store_true", help="print the SQL for an empty database; change nothing"
    )


def run_migrate_command(schema: Schema, *, sql: bool) -> int:
    """`<service> migrate [--sql]`: 0 when done (or printed), 2 for configuration or a mismatch.

    Reads only the settings every service has (`DATABASE_URL`), so a migration job needs
    no SMTP or Kafka configuration. `DB_MIGRATE_ON_START=false` with this command run once
    per release, before the new instances start, is the flow for teams whose deploy tool
    runs migrations as a job.
    """
    try:
        settings = load_settings(RunnerSettings)
    except ConfigurationError as exc:
        print(f"{schema.name}: {exc}", file=sys.stderr)
        return 2
    url = schema.url(settings)
    if sql:
        print(migration_sql(url, schema), end="")
        return 0
    engine = make_engine(url)
    try:
        applied = migrate(engine, schema)
    except SchemaMismatch as exc:
        print(f"{schema.name}: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"{schema.name}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))
    return 0


def _run(
    connection: Connection,
    schema: Schema,
    script: ScriptDirectory,
    fn: Callable[[Any, MigrationContext], Any],
    *,
    destination: str,
) -> None:
    config = Config()
    with EnvironmentContext(config, script, fn=fn, destination_rev=destination) as environment:
        environment.configure(
            connection=connection,
            version_table=schema.version_table,
            transaction_per_migration=False,
        )
        with environment.begin_transaction():
            environment.run_migrations()


def _known_or_raise(script: ScriptDirectory, schema: Schema, revisions: Sequence[str]) -> None:
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = [revision for revision in revisions if revision not in known]
    if unknown:
        raise SchemaMismatch(
            f"the {schema.name} database is at revision {', '.join(unknown)}, which this "
            "release does not know: a newer release migrated it. Run that release, or roll "
            "the database back with it before starting this one."
        )


@contextlib.contextmanager
def _migration_lock(connection: Connection, engine: Engine, schema: Schema) -> Iterator[None]:
    """One migrating instance at a time per database and schema (see the module's notes)."""
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(f"dreamscape.migrate.{schema.name}".encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield  # released by the transaction's commit or rollback
        return
    database = make_url(str(engine.url)).database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(f"{database}.migrate-lock")
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
