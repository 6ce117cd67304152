"""What a chaos run stands on: three brokers, PostgreSQL and an SMTP server, each cuttable.

One `Environment` serves every scenario of a run (starting three JVMs and a database server
is the slow part); each scenario gets fresh topics (a prefix) and fresh databases, so no
scenario sees another's records or rows.

* Apache Kafka: three combined-mode nodes, replication factor 3, `min.insync.replicas=2`.
  Each node advertises a `TcpProxy` in front of its client port, so `cut_network` drops
  every client connection (services, publisher, lag reader) while the brokers keep talking
  to each other on their internal listener.
* PostgreSQL (`provision_postgres`: a server of the machine or the embedded one) behind a
  proxy too; the fault-injecting admin connection goes around it.
* `SmtpSink`, stopped and started on the same port for `stop_smtp`, scripted to answer 452
  for one recipient in the `smtp` scenario.
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Final

import psycopg
from confluent_kafka.admin import AdminClient
from psycopg import sql
from sqlalchemy.engine import make_url

from dreamscape_dev.testing.apache_kafka import ApacheKafka
from dreamscape_dev.testing.postgres import PostgresServer, provision_postgres
from dreamscape_dev.testing.proxy import TcpProxy, free_port
from dreamscape_dev.testing.running import wait_until
from dreamscape_dev.testing.smtp import SmtpSink

BROKERS: Final = 3
DATABASES: Final = ("voyage", "notification", "analytics")


@dataclass(frozen=True, slots=True)
class Databases:
    """One scenario's databases: the services' URLs (through the proxy) and the admin's."""

    names: dict[str, str]
    """service → database name."""
    service_urls: dict[str, str]
    direct_urls: dict[str, str]


class Environment:
    """Brokers, database server and SMTP server for a whole run; `close()` stops them."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        #: Brokers are restarted from this one long-lived thread: a node dies with the thread
        #: that started it (`die_with_parent` is PR_SET_PDEATHSIG, which follows the thread),
        #: so a node restarted by a fault's short-lived thread would die when the fault ends.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="chaos-brokers")
        self.kafka: ApacheKafka | None = None
        self.broker_proxies: list[TcpProxy] = []
        self.postgres: PostgresServer | None = None
        self.database_proxy: TcpProxy | None = None
        self.smtp = SmtpSink()

    def start(self) -> Environment:
        try:
            ports = [free_port() for _ in range(BROKERS)]
            self.broker_proxies = [
                self._stack.enter_context(TcpProxy("127.0.0.1", port)) for port in ports
            ]
            kafka = ApacheKafka(
                BROKERS,
                client_ports=ports,
                advertised_ports=[proxy.port for proxy in self.broker_proxies],
            )
            self._stack.callback(self._spawner.shutdown)
            self.kafka = self._spawner.submit(kafka.start).result()
            self._stack.callback(lambda: self._spawner.submit(kafka.stop).result())
            self.postgres = self._stack.enter_context(provision_postgres())
            self.database_proxy = self._stack.enter_context(
                TcpProxy(self.postgres.host, self.postgres.port)
            )
            self._stack.enter_context(self.smtp)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for proxy in self.broker_proxies:  # open client connections would hold brokers up
            proxy.cut()
        self._stack.close()

    def __enter__(self) -> Environment:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stop_broker(self, node_id: int, sig: signal.Signals) -> None:
        self._spawner.submit(self.cluster.stop_node, node_id, sig).result()

    def start_broker(self, node_id: int) -> None:
        """Start a stopped broker again (from the long-lived thread; see `__init__`)."""
        self._spawner.submit(self.cluster.start_node, node_id).result()

    @property
    def cluster(self) -> ApacheKafka:
        assert self.kafka is not None, "start() first"
        return self.kafka

    @property
    def server(self) -> PostgresServer:
        assert self.postgres is not None, "start() first"
        return self.postgres

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    def describe(self) -> str:
        return (
            f"{self.cluster.describe()}, replication factor 3, min.insync.replicas=2; "
            f"PostgreSQL {self.server.describe()}; SMTP {self.smtp.host}:{self.smtp.port}"
        )

    @contextlib.contextmanager
    def databases(self) -> Iterator[Databases]:
        """Fresh databases for one scenario, dropped afterwards."""
        run = uuid.uuid4().hex[:8]
        names = {service: f"chaos_{run}_{service}" for service in DATABASES}
        for name in names.values():
            self.admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        proxy = self.database_proxy
        assert proxy is not None
        direct = {s: self.server.url(n) for s, n in names.items()}
        through = {
            s: make_url(url).set(host=proxy.host, port=proxy.port).render_as_string(False)
            for s, url in direct.items()
        }
        try:
            yield Databases(names, through, direct)
        finally:
            for name in names.values():
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                self.admin(drop.format(sql.Identifier(name)))

    def admin(self, statement: sql.Composed, database: str | None = None) -> None:
        """Run `statement` on the server directly (not through the services' proxy)."""
        conninfo = self.server.admin_conninfo()
        if database is not None:
            conninfo = psycopg.conninfo.make_conninfo(conninfo, dbname=database)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(statement)

    def set_read_only(self, databases: Databases, read_only: bool) -> None:
        """Make the databases read-only (or writable) for new sessions; end the existing ones.

        What a demoted primary looks like to its clients: every write in a new session fails
        with SQLSTATE 25006 until the setting is reset.
        """
        for name in databases.names.values():
            setting = "on" if read_only else "off"
            self.admin(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = {}").format(
                    sql.Identifier(name), sql.SQL(setting)
                )
            )
            self.admin(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = {} AND pid <> pg_backend_pid()"
                ).format(sql.Literal(name))
            )

    def wait_fully_replicated(self, topics: Sequence[str], timeout_s: float = 120.0) -> None:
        """Return once every partition of `topics` has all three replicas in sync."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

        def in_sync() -> bool:
            try:
                metadata = admin.list_topics(timeout=5).topics
            except Exception:  # a broker rejoining may not answer yet: not in sync yet
                return False
            return all(
                len(partition.isrs) == BROKERS
                for name in topics
                for partition in metadata[name].partitions.values()
            )

        wait_until(in_sync, timeout_s, "every partition fully replicated")
