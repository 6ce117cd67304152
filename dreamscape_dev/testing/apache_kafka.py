"""Real Apache Kafka brokers (KRaft) for tests and local work, without Docker or a tarball.

The broker is published on Maven Central as ordinary jars. `kafka-libs.xml` (beside this
module) pins the release; `ensure_kafka_libs` copies its runtime dependencies once into
`~/.cache/dreamscape/kafka-<version>/lib` with Maven and reuses them afterwards. Each node is
one `kafka.Kafka` JVM in combined mode (broker and controller), on free loopback ports, with
its storage formatted by `kafka.tools.StorageTool` and settings fit for tests: replication
factors no larger than the cluster, no initial rebalance delay, and low minimum session and
heartbeat intervals for both group protocols (classic and KIP-848), so groups form in well
under a second.

Every node has three listeners: `CLIENT` (what clients bootstrap from; it may advertise the
port of a `TcpProxy` in front of it, so a test can cut clients off), `INTERNAL` (replication
between brokers, never proxied) and `CONTROLLER` (the KRaft quorum).

A secured cluster (`ApacheKafka(security=SaslSsl(...))`) makes `CLIENT` a SASL_SSL listener
with SCRAM-SHA-512 users created when the storage is formatted, and turns on the
`StandardAuthorizer` with no access where no ACL allows it. `INTERNAL` and `CONTROLLER` stay
PLAINTEXT on loopback and are never advertised to clients; their principal (`ANONYMOUS`) is
a super user so that brokers and controllers can talk before any ACL exists. With
`SaslSsl(mtls=True)` each node adds an `MTLS` listener: SSL, client certificates required,
the certificate's CN the principal.
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from dreamscape_dev.testing.children import die_with_parent
from dreamscape_dev.testing.proxy import free_port

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka-libs.xml"
LOG4J2 = HERE / "kafka-log4j2.properties"
CACHE_ENV = "DREAMSCAPE_CACHE"
_READY_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 15.0
#: Start-up flags that halve a test broker's start here: a small heap, the serial collector
#: and the C1 compiler only (a test broker never runs long enough for C2 to pay off).
JVM_FLAGS = ("-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")

#: Group timings low enough for tests, for both protocols. The KIP-848 minimums default to
#: 45 s and 5 s, which the broker would otherwise impose on every consumer-protocol member.
FAST_GROUPS: Mapping[str, str] = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",  # classic: clients ask for session.timeout.ms=1000
    "group.consumer.min.session.timeout.ms": "500",
    "group.consumer.session.timeout.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "50",
    "group.consumer.heartbeat.interval.ms": "100",
}


class KafkaStartError(RuntimeError):
    """The broker could not be fetched, formatted or started; the message carries its output."""


SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True, slots=True)
class SaslSsl:
    """A SASL_SSL `CLIENT` listener: SCRAM-SHA-512 `users`, a PKCS12 keystore, ACLs enforced.

    `users` (name → password) are created at format time (`--add-scram`, KIP-900), so they
    exist before the broker first starts (users made later by `SecuredBroker.add_user` are
    recorded here too); `admin` is the super user clients administer with. With `mtls`, each node also has an `MTLS` listener (SSL, client certificates required,
    trusted when `ca_location` signed them) whose principal is the certificate's CN
    (`CN=voyage` → `User:voyage`).
    """

    users: dict[str, str]
    keystore: Path
    keystore_password: str
    ca_location: Path
    admin: str = "admin"
    mtls: bool = False

    def broker_properties(self) -> dict[str, str]:
        """server.properties entries for the listener, its TLS and the authorizer."""
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        mtls = "MTLS:SSL," if self.mtls else ""
        properties = {
            "listener.security.protocol.map": (
                f"CLIENT:SASL_SSL,{mtls}INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.client.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": self.keystore_password,
            "ssl.key.password": self.keystore_password,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            # ANONYMOUS: the loopback PLAINTEXT listeners between brokers and controllers.
            "super.users": f"User:{self.admin};User:ANONYMOUS",
        }
        if self.mtls:
            properties |= {
                "listener.name.mtls.ssl.client.auth": "required",
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ca_location),
                "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            }
        return properties

    def format_arguments(self) -> list[str]:
        """`kafka-storage format` options creating every user's SCRAM credential."""
        arguments = []
        for name, password in self.users.items():
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        return arguments

    def client_config(self, user: str, password: str | None = None) -> dict[str, str]:
        """librdkafka properties (no bootstrap) for `user`; `password` overrides the real one."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": user,
            "sasl.password": self.users[user] if password is None else password,
            "ssl.ca.location": str(self.ca_location),
        }


def kafka_version() -> str:
    """The Apache Kafka release pinned in `kafka-libs.xml`."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).find("m:properties/m:kafka.version", namespace)  # noqa: S314  # our file
    if node is None or not node.text:
        raise KafkaStartError(f"{POM} pins no kafka.version")
    return node.text.strip()


def missing_tools() -> list[str]:
    """Which of `java` and `mvn` are not on PATH (Apache Kafka needs both)."""
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def cache_dir() -> Path:
    """Where fetched brokers live: `$DREAMSCAPE_CACHE`, else `~/.cache/dreamscape`."""
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured) if configured else Path.home() / ".cache" / "dreamscape"
    return base.expanduser()


def ensure_kafka_libs(version: str | None = None) -> Path:
    """The broker's jars, fetched from Maven Central on first use; returns their directory.

    A lock file makes concurrent callers (two test runs, a test run and `dreamscape broker`)
    wait for one fetch; the jars are copied into a temporary directory renamed into place,
    so an interrupted fetch leaves nothing that looks complete.
    """
    version = version or kafka_version()
    home = cache_dir() / f"kafka-{version}"
    lib = home / "lib"
    if (lib / f"kafka_2.13-{version}.jar").exists():
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (lib / f"kafka_2.13-{version}.jar").exists():
            return lib
        staging = home / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        command = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                   f"-Dkafka.version={version}", "-DincludeScope=runtime",
                   f"-DoutputDirectory={staging}"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            raise KafkaStartError(f"mvn could not fetch Apache Kafka {version}:\n{output}")
        staging.rename(lib)
    return lib


def new_cluster_id() -> str:
    """A cluster id as `kafka-storage random-uuid` makes one: 16 random bytes, base64url.

    Like Kafka's `Uuid.randomUuid`, never one starting with '-': the storage tool would read
    it as an option (1 draw in 64).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _warm_group_coordinator(admin: AdminClient, deadline: float) -> None:
    """Have the broker create `__consumer_offsets` now rather than on the first group join.

    On a fresh broker the first join otherwise waits ~3 s for the offsets topic and its
    coordinator to load; describing any group triggers the same work up front.
    """
    while time.monotonic() < deadline:
        future = admin.describe_consumer_groups(["dreamscape-warm-up"])["dreamscape-warm-up"]
        try:
            future.result(timeout=5)
            return
        except Exception:  # NOT_COORDINATOR while the topic loads
            time.sleep(0.05)


class KafkaNode:
    """One `kafka.Kafka` JVM, broker and controller in one, with its own data directory.

    Stopping and starting it again keeps its data and ports, as a restarted broker would.
    """

    def __init__(
        self, node_id: int, directory: Path, lib: Path, client_port: int | None = None
    ) -> None:
        self.node_id = node_id
        self.directory = directory
        self.client_port = client_port or free_port()
        self.internal_port = free_port()
        self.controller_port = free_port()
        #: The port clients are told to use: `client_port`, or a proxy's in front of it.
        self.advertised_port = self.client_port
        #: A secured node's client-certificate listener (`SaslSsl.mtls`), never proxied.
        self.mtls_port: int | None = None
        self._classpath = str(lib / "*")
        self._process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_properties(self, voters: str, replication: int, extra: Mapping[str, str]) -> None:
        """server.properties for this node in a cluster whose quorum is `voters`."""
        in_sync = str(min(2, replication))
        mtls = f"MTLS://127.0.0.1:{self.mtls_port}," if self.mtls_port else ""
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"CLIENT://127.0.0.1:{self.client_port},{mtls}"
                f"INTERNAL://127.0.0.1:{self.internal_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"CLIENT://127.0.0.1:{self.advertised_port},{mtls}"
                f"INTERNAL://127.0.0.1:{self.internal_port}"
            ),
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": (
                "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "log.dirs": str(self.directory / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(replication),
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": str(replication),
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": str(replication),
            "share.coordinator.state.topic.min.isr": in_sync,
            # A crashed broker is fenced, and a stopping one released, within ~1.5 s
            # instead of 9 s: both travel on broker heartbeats to the controller.
            "broker.heartbeat.interval.ms": "250",
            "broker.session.timeout.ms": "1500",
            **FAST_GROUPS,
            **extra,
        }
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))

    def format(self, cluster_id: str, options: Sequence[str] = ()) -> None:
        """Format this node's storage for `cluster_id` (once, before its first start)."""
        command = [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id,
                   "-c", str(self.properties_file), *options]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaStartError(f"formatting node {self.node_id} failed:\n{result.stderr}")

    def start(self) -> None:
        """Launch the JVM (in its own session, so a terminal's Ctrl-C reaches only the caller)."""
        with self.log_file.open("ab") as out:
            self._process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(self.properties_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` if the JVM runs (SIGTERM: controlled shutdown; SIGKILL: a crash)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(sig)

    def wait(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Wait for the JVM to exit; kill it if it has not within `timeout_s`."""
        if self._process is None:
            return
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = _STOP_TIMEOUT_S
    ) -> None:
        """Send `sig` and wait for the exit (killing the JVM after `timeout_s`)."""
        self.send(sig)
        self.wait(timeout_s)

    def output_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def _java(self) -> list[str]:
        return ["java", *JVM_FLAGS, "-cp", self._classpath,
                f"-Dlog4j2.configurationFile={LOG4J2}", f"-Dkafka.logs.dir={self.directory}"]  # fmt: skip


class ApacheKafka:
    """A throw-away Apache Kafka cluster of `nodes` combined-mode nodes on loopback.

    With three nodes, topics default to replication factor 3 and `min.insync.replicas=2`.
    `client_ports` and `advertised_ports` (one per node) put a `TcpProxy` between clients and
    brokers: each node listens on its client port and advertises the proxy's.
    A test can stop and restart any node (`stop_node`, `start_node`) or find the leader of a
    partition (`leader_of`). Everything it wrote is removed by `stop()`. With `security`, the
    client listener is SASL_SSL and ACLs are enforced (see `SaslSsl`); `admin_config` is what
    a client needs besides the bootstrap servers to administer it.
    """

    def __init__(
        self,
        nodes: int = 1,
        *,
        extra: Mapping[str, str] | None = None,
        client_ports: Sequence[int] | None = None,
        advertised_ports: Sequence[int] | None = None,
        security: SaslSsl | None = None,
    ) -> None:
        self.version = kafka_version()
        self._count = nodes
        self.security = security
        self._extra = {**(security.broker_properties() if security else {}), **(extra or {})}
        self._format_options = security.format_arguments() if security else []
        self.admin_config: dict[str, str] = (
            security.client_config(security.admin) if security else {}
        )
        self._client_ports = list(client_ports or [])
        self._advertised = list(advertised_ports or [])
        self.directory: Path | None = None
        self.nodes: dict[int, KafkaNode] = {}

    @property
    def replication_factor(self) -> int:
        return min(3, self._count)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.advertised_port}" for n in self.nodes.values())

    @property
    def mtls_bootstrap_servers(self) -> str:
        """Where clients with a certificate bootstrap (a secured cluster's `MTLS` listener)."""
        return ",".join(f"127.0.0.1:{n.mtls_port}" for n in self.nodes.values() if n.mtls_port)

    def describe(self) -> str:
        nodes = "1 node" if self._count == 1 else f"{self._count} nodes"
        secured = ", SASL_SSL" if self.security else ""
        return f"Apache Kafka {self.version} (KRaft, {nodes}{secured})"

    def start(self) -> ApacheKafka:
        """Fetch (once), format and start every node; return when all are in the metadata."""
        lib = ensure_kafka_libs(self.version)
        self.directory = Path(tempfile.mkdtemp(prefix="dreamscape-kafka-"))
        for node_id in range(1, self._count + 1):
            fixed = self._client_ports[node_id - 1] if len(self._client_ports) >= node_id else None
            node = KafkaNode(node_id, self.directory / f"node{node_id}", lib, fixed)
            if len(self._advertised) >= node_id:
                node.advertised_port = self._advertised[node_id - 1]
            if self.security and self.security.mtls:
                node.mtls_port = free_port()
            self.nodes[node_id] = node
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes.values())
        cluster_id = new_cluster_id()
        try:
            for node in self.nodes.values():
                node.write_properties(voters, self.replication_factor, self._extra)
            with ThreadPoolExecutor(
                self._count
            ) as pool:  # each format is a JVM start: overlap them
                list(
                    pool.map(
                        lambda n: n.format(cluster_id, self._format_options), self.nodes.values()
                    )
                )
            for node in self.nodes.values():
                node.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, brokers: int | None = None, timeout_s: float = _READY_TIMEOUT_S) -> None:
        """Wait until an AdminClient lists topics and sees `brokers` brokers (default: all live)."""
        wanted = brokers if brokers is not None else sum(n.alive for n in self.nodes.values())
        direct = ",".join(f"127.0.0.1:{n.client_port}" for n in self.nodes.values() if n.alive)
        admin = AdminClient(  # quiet while starting
            {"bootstrap.servers": direct, **self.admin_config, "log_level": 0}
        )
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes.values():
                if node._process is not None and not node.alive:
                    raise KafkaStartError(f"node {node.node_id} exited:\n{node.output_tail()}")
            try:
                if len(admin.list_topics(timeout=1).brokers) >= wanted:
                    _warm_group_coordinator(admin, deadline)
                    return
            except Exception:  # noqa: S110  # not answering yet: that is what we wait for
                pass
            if time.monotonic() > deadline:
                tails = "\n".join(n.output_tail(1500) for n in self.nodes.values())
                raise KafkaStartError(f"Apache Kafka not ready in {timeout_s:.0f} s:\n{tails}")
            time.sleep(0.05)

    def stop_node(self, node_id: int, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop one node: SIGTERM for a controlled shutdown, SIGKILL for a crash."""
        self.nodes[node_id].stop(sig)

    def start_node(self, node_id: int) -> None:
        """Start a stopped node again on its data and ports; return once it is back in the metadata."""
        self.nodes[node_id].start()
        self.wait_ready()

    def leader_of(self, topic: str, partition: int) -> int:
        """The node id currently leading `topic`/`partition`."""
        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, **self.admin_config, "log_level": 0}
        )
        metadata = admin.list_topics(topic, timeout=10)
        return int(metadata.topics[topic].partitions[partition].leader)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL for any still running) and remove their data."""
        for node in self.nodes.values():
            node.send(signal.SIGTERM)  # all at once: the quorum leaves together
        for node in self.nodes.values():
            node.wait(timeout_s=3.0)  # the data is thrown away: no need to wait long
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
