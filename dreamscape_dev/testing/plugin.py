"""pytest fixtures for integration tests against a real broker, PostgreSQL and SMTP server.

Registered as the `dreamscape` pytest11 entry point, so every team's tests get the same
real services with no conftest boilerplate. Nothing is autouse: a test pays only for the
services it names. Scope is per test except the broker, which is shared by the session
and isolated per test by unique topic prefixes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from common.topics import Topics
from dreamscape_dev.testing.apache_kafka import ApacheKafka
from dreamscape_dev.testing.broker import (
    BrokerChoice,
    ProxiedBroker,
    SecuredBroker,
    SessionBroker,
    choose_broker,
    create_topics,
    proxied_broker,
    requirement_unmet,
    secured_broker,
    start_broker,
)
from dreamscape_dev.testing.browser import HeadlessChromium, chromium_path, headless_chromium
from dreamscape_dev.testing.postgres import (
    PostgresServer,
    PostgresUnavailableError,
    fresh_database,
    provision_postgres,
)
from dreamscape_dev.testing.proxy import TcpProxy
from dreamscape_dev.testing.smtp import SmtpSink

KafkaConfig = dict[str, str | int]

#: Client settings that keep consumer-group joins at ~1 s on the embedded broker.
FAST_GROUP_SETTINGS: KafkaConfig = {"session.timeout.ms": 1000, "heartbeat.interval.ms": 100}


_CHOICE = pytest.StashKey[BrokerChoice]()


POSTGRES_MARKER = (
    "postgres: needs the PostgreSQL server (skipped unless reachable; REQUIRE_POSTGRES=1 makes "
    "it a failure)"
)


def pytest_configure(config: pytest.Config) -> None:
    """Decide the session's broker once, before the header is printed; declare `postgres`."""
    config.stash[_CHOICE] = choose_broker()
    config.addinivalue_line("markers", POSTGRES_MARKER)


def pytest_report_header(config: pytest.Config) -> str:
    return f"broker: {config.stash[_CHOICE].describe()}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """`REQUIRE_KAFKA=apache` stops the run at once if Apache Kafka is not what it would use."""
    if problem := requirement_unmet(session.config.stash[_CHOICE]):
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


def unmarked_postgres_tests(items: Iterable[pytest.Item]) -> list[str]:
    """The tests among `items` that use PostgreSQL without saying so with `@pytest.mark.postgres`.

    A test uses it when `postgres_server` is among its fixtures (asking for `postgres_url`
    asks for it); `database_url` marks its PostgreSQL run itself.
    """
    return [
        item.nodeid
        for item in items
        if "postgres_server" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("postgres") is None
    ]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: `-m postgres` would hide them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stop the run if a test uses PostgreSQL unmarked: `-m "not postgres"` would still run it."""
    if unmarked := unmarked_postgres_tests(items):
        raise pytest.UsageError(
            "these tests use PostgreSQL (postgres_url, postgres_server) but are not marked "
            "@pytest.mark.postgres:\n  " + "\n  ".join(unmarked)
        )


@pytest.fixture(scope="session")
def broker_choice(pytestconfig: pytest.Config) -> BrokerChoice:
    """Which broker this session uses (see `dreamscape_dev.testing.broker.choose_broker`)."""
    return pytestconfig.stash[_CHOICE]


@pytest.fixture(scope="session")
def session_broker(broker_choice: BrokerChoice) -> Iterator[SessionBroker]:
    """The one broker shared by the whole test session."""
    with start_broker(broker_choice) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(session_broker: SessionBroker) -> str:
    """Bootstrap servers of the session's broker."""
    return session_broker.bootstrap_servers


@pytest.fixture(params=["classic", "consumer"])
def group_protocol(request: pytest.FixtureRequest, broker_choice: BrokerChoice) -> str:
    """Runs the test under both consumer group protocols (`KAFKA_GROUP_PROTOCOL`).

    `consumer` (KIP-848) needs an Apache Kafka 4.x broker; on Tansu that case is skipped
    with the reason (and CI, on Apache Kafka, runs both).
    """
    protocol: str = request.param
    if protocol == "consumer" and broker_choice.kind == "tansu":
        pytest.skip(f"group.protocol=consumer needs Apache Kafka 4.x; {broker_choice.describe()}")
    return protocol


@pytest.fixture
def kafka_cluster(broker_choice: BrokerChoice) -> Iterator[ApacheKafka]:
    """A private three-node Apache Kafka cluster (RF 3, min.insync.replicas 2) for this test.

    For tests that stop, kill and restart brokers; skipped where Apache Kafka cannot run
    (and failing under REQUIRE_KAFKA=apache, which stops the session before this).
    """
    if broker_choice.kind not in ("apache", "address"):
        pytest.skip(f"a three-node cluster needs Apache Kafka; {broker_choice.describe()}")
    with ApacheKafka(3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def secured_kafka(broker_choice: BrokerChoice) -> Iterator[SecuredBroker]:
    """A private Apache Kafka on SASL_SSL (SCRAM-SHA-512, a throw-away CA) enforcing ACLs.

    Started once, by the first test that asks for it, and shared by the session: users
    `admin` (super user), `voyage`, `notification`, `analytics`, `operator` and `outsider`
    hold no permission until a test grants one on its own topics (`SecuredBroker.grant`);
    `voyage-mtls` connects with a client certificate instead (`SecuredBroker.mtls_env`).
    Skipped where Apache Kafka cannot run (failing under REQUIRE_KAFKA=apache, as above).
    """
    if broker_choice.kind not in ("apache", "address"):
        pytest.skip(f"a secured broker needs Apache Kafka; {broker_choice.describe()}")
    with secured_broker() as broker:
        yield broker


@pytest.fixture
def topics(kafka_bootstrap_servers: str) -> Topics:
    """Payment topics under a prefix unique to this test, created with 3 partitions each."""
    names = Topics(prefix=f"t{uuid.uuid4().hex[:8]}-")
    create_topics(kafka_bootstrap_servers, names.payment_topics, partitions=3)
    return names


@pytest.fixture
def kafka_config(kafka_bootstrap_servers: str) -> KafkaConfig:
    """confluent_kafka settings for the session broker, with fast consumer-group timings.

    The group timings are consumer properties: a producer given this dict logs a harmless
    configuration warning, so producers may take just `bootstrap.servers`.
    """
    return {"bootstrap.servers": kafka_bootstrap_servers, **FAST_GROUP_SETTINGS}


@pytest.fixture
def proxied_kafka(broker_choice: BrokerChoice) -> Iterator[ProxiedBroker]:
    """A private broker of the session's kind, reachable only through a `TcpProxy`."""
    with proxied_broker(broker_choice) as proxied:
        yield proxied


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session: `TEST_DATABASE_URL`, 127.0.0.1:5432, or embedded.

    Skips the tests that need it when none can be had, and fails them under
    `REQUIRE_POSTGRES=1` (CI), naming what was tried.
    """
    try:
        with provision_postgres() as server:
            yield server
    except PostgresUnavailableError as exc:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{exc} (and REQUIRE_POSTGRES=1)")
        pytest.skip(str(exc))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test twice: on a fresh SQLite file, then on a fresh PostgreSQL database."""
    url: str = request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "postgres_url"
    )
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of an SQLite file in this test's temporary directory."""
    return f"sqlite:///{tmp_path}/test.db"


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A running SMTP sink on 127.0.0.1, stopped after the test."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[str, int], TcpProxy]]:
    """Factory `tcp_proxy(host, port)` for cuttable proxies, all closed after the test."""
    proxies: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[HeadlessChromium]:
    """A headless Chromium (Debian's) driven by Playwright, shared by the session."""
    executable = chromium_path()
    if executable is None:
        message = "Chromium not installed (make test installs it where apt-get is available)"
        if os.environ.get("REQUIRE_TOOLS") == "1":
            pytest.fail(f"{message} and REQUIRE_TOOLS=1")
        pytest.skip(message)
    with headless_chromium(executable) as browser:
        yield browser
