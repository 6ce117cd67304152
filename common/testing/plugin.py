"""pytest fixtures for integration tests against a real broker, PostgreSQL and SMTP server.

Registered as the `dreamscape` pytest11 entry point, so every team's tests get the same
real services with no conftest boilerplate. Nothing is autouse: a test pays only for the
services it names. Scope is per test except the broker, which is shared by the session
and isolated per test by unique topic prefixes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.testing.broker import (
    ProxiedBroker,
    broker_bootstrap,
    create_topics,
    proxied_embedded_broker,
)
from common.testing.browser import HeadlessChromium, chromium_path, headless_chromium
from common.testing.postgres import (
    PostgresServer,
    PostgresUnavailableError,
    fresh_database,
    provision_postgres,
)
from common.testing.proxy import TcpProxy
from common.testing.smtp import SmtpSink
from common.topics import Topics

KafkaConfig = dict[str, str | int]

#: Client settings that keep consumer-group joins at ~1 s on the embedded broker.
FAST_GROUP_SETTINGS: KafkaConfig = {"session.timeout.ms": 1000, "heartbeat.interval.ms": 100}


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """Bootstrap servers of one broker shared by the whole test session."""
    with broker_bootstrap() as bootstrap:
        yield bootstrap


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
def proxied_kafka() -> Iterator[ProxiedBroker]:
    """A private embedded broker reachable only through a `TcpProxy`, for outage tests."""
    with proxied_embedded_broker() as proxied:
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
