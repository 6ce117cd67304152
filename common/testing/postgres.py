"""Throw-away PostgreSQL databases on the local server, for tests that need real SQL.

The development and CI machines run PostgreSQL on 127.0.0.1:5432 with trust auth. Each
test gets its own freshly created database, so tests never see each other's rows and
need no cleanup code; it is dropped (forcibly, even with connections left open) after.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5432
ADMIN_USER = "postgres"


def _admin_conninfo(host: str, port: int) -> str:
    return f"host={host} port={port} user={ADMIN_USER} dbname=postgres connect_timeout=3"


def postgres_available(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> bool:
    """Whether PostgreSQL accepts a trust-auth login as `postgres` at `host`:`port`."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            pass
        with psycopg.connect(_admin_conninfo(host, port)) as conn:
            conn.execute("SELECT 1")
    except (OSError, psycopg.Error):
        return False
    return True


def _admin_execute(host: str, port: int, statement: sql.Composed) -> None:
    with psycopg.connect(_admin_conninfo(host, port), autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def fresh_database(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Iterator[str]:
    """Create a uniquely named database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin_execute(host, port, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{ADMIN_USER}@{host}:{port}/{name}"
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        _admin_execute(host, port, drop)
