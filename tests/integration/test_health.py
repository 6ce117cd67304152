"""The health/metrics HTTP endpoint over real HTTP, and the liveness heartbeat."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, Counter

from common.health import HealthServer, Liveness
from common.service import DlqPathCheck
from common.settings import RunnerSettings
from dreamscape_dev.testing.broker import create_topics
from dreamscape_dev.testing.running import wait_until


@dataclass
class Probes:
    """Checks the test flips between requests."""

    alive: bool = True
    ready: bool = True
    checks: dict[str, str] = field(default_factory=lambda: {"partitions_assigned": "ok"})
    broken: bool = False

    def liveness(self) -> bool:
        return self.alive

    def readiness(self) -> tuple[bool, dict[str, str]]:
        if self.broken:
            raise RuntimeError("check crashed")
        return self.ready, dict(self.checks)


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("dreamscape_test_things", "Things.", ["service"], registry=registry).labels("v").inc(3)
    return registry


@pytest.fixture
def server(probes: Probes, registry: CollectorRegistry) -> Iterator[HealthServer]:
    with HealthServer(0, registry, probes.liveness, probes.readiness, host="127.0.0.1") as running:
        yield running


def get(server: HealthServer, path: str, accept: str | None = None) -> Response:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if accept is not None:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return Response(reply.status, reply.headers["Content-Type"], reply.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers["Content-Type"], error.read())


@pytest.mark.integration
class TestHealthServer:
    def test_port_zero_binds_a_free_port(self, server: HealthServer) -> None:
        """Started on port 0, the server reports the real port it listens on."""
        assert server.port > 0
        assert get(server, "/healthz").status == 200

    def test_healthz_reports_a_live_loop(self, server: HealthServer) -> None:
        """/healthz answers 200 and status ok while the loop is alive."""
        response = get(server, "/healthz")
        assert (response.status, response.content_type) == (200, "application/json")
        assert response.json() == {"status": "ok"}

    def test_healthz_reports_a_stalled_loop(self, server: HealthServer, probes: Probes) -> None:
        """/healthz answers 503 and status stalled once liveness fails."""
        probes.alive = False
        response = get(server, "/healthz")
        assert (response.status, response.json()) == (503, {"status": "stalled"})

    def test_readyz_flips_to_503_and_shows_its_checks(
        self, server: HealthServer, probes: Probes
    ) -> None:
        """/readyz is 200 while ready and 503 with the failing check named when not."""
        ready = get(server, "/readyz")
        assert (ready.status, ready.json()) == (
            200,
            {"ready": True, "checks": {"partitions_assigned": "ok"}},
        )
        probes.ready = False
        probes.checks["database"] = "failing"
        not_ready = get(server, "/readyz")
        assert (not_ready.status, not_ready.json()) == (
            503,
            {"ready": False, "checks": {"partitions_assigned": "ok", "database": "failing"}},
        )

    def test_a_crashing_check_answers_500(self, server: HealthServer, probes: Probes) -> None:
        """A readiness callable that raises yields a 500 answer, not a dropped connection."""
        probes.broken = True
        response = get(server, "/readyz")
        assert (response.status, response.json()) == (500, {"error": "RuntimeError"})

    def test_metrics_exposes_the_registry(self, server: HealthServer) -> None:
        """/metrics serves the registry in the Prometheus text format."""
        response = get(server, "/metrics")
        assert response.status == 200
        assert response.content_type.startswith("text/plain")
        assert b'dreamscape_test_things_total{service="v"} 3.0' in response.body

    def test_metrics_negotiates_openmetrics(self, server: HealthServer) -> None:
        """A scraper asking for OpenMetrics gets it."""
        response = get(server, "/metrics", accept="application/openmetrics-text; version=1.0.0")
        assert response.content_type.startswith("application/openmetrics-text")
        assert response.body.endswith(b"# EOF\n")

    def test_query_strings_are_ignored(self, server: HealthServer) -> None:
        """A probe with a query string reaches its route."""
        assert get(server, "/healthz?verbose=1").status == 200

    def test_unknown_paths_are_404(self, server: HealthServer) -> None:
        """Anything but the three routes is not found."""
        assert get(server, "/").status == 404
        assert get(server, "/metricsz").status == 404

    def test_requests_are_not_logged(
        self, server: HealthServer, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """Probes leave no access-log lines on stderr."""
        get(server, "/healthz")
        get(server, "/nope")
        assert capfd.readouterr().err == ""

    def test_stop_releases_the_port(self, probes: Probes, registry: CollectorRegistry) -> None:
        """After stop the port refuses connections, and stopping twice is harmless."""
        server = HealthServer(0, registry, probes.liveness, probes.readiness, host="127.0.0.1")
        server.start()
        port = server.port
        server.stop()
        server.stop()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)


class TestLiveness:
    def test_alive_at_start(self) -> None:
        """A fresh heartbeat is alive before the first beat, for its whole grace period."""
        clock = [10.0]
        liveness = Liveness(30.0, now=lambda: clock[0])
        clock[0] = 40.0
        assert liveness()

    def test_stalls_after_max_silence(self) -> None:
        """No beat for longer than max_silence_s means stalled."""
        clock = [10.0]
        liveness = Liveness(30.0, now=lambda: clock[0])
        clock[0] = 40.1
        assert not liveness()

    def test_beat_revives(self) -> None:
        """A beat makes a stalled heartbeat alive again."""
        clock = [10.0]
        liveness = Liveness(30.0, now=lambda: clock[0])
        clock[0] = 100.0
        liveness.beat()
        clock[0] = 129.0
        assert liveness()


@pytest.mark.integration
class TestResourceLimits:
    def test_a_client_that_never_finishes_its_request_is_disconnected(
        self, probes: Probes, registry: CollectorRegistry
    ) -> None:
        """A connection that sends half a request line is closed after the request timeout, not held for ever (issue 10, finding 19)."""
        with (
            HealthServer(
                0,
                registry,
                probes.liveness,
                probes.readiness,
                host="127.0.0.1",
                request_timeout_s=0.3,
            ) as running,
            socket.create_connection(("127.0.0.1", running.port)) as idle,
        ):
            idle.sendall(b"GET /heal")
            idle.settimeout(10)  # the bound on the test, far above the server's 0.3 s
            assert idle.recv(1024) == b""  # closed by the server

    def test_beyond_the_connection_cap_a_request_is_refused_at_once(
        self, probes: Probes, registry: CollectorRegistry
    ) -> None:
        """With the cap reached by idle connections, another request gets 503 right away and a slot freed serves again."""
        with HealthServer(
            0, registry, probes.liveness, probes.readiness, host="127.0.0.1", max_connections=2
        ) as running:
            idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(2)]
            for sock in idle:
                sock.sendall(b"GET /heal")  # each holds a handler thread
            wait_until(lambda: running.active_connections == 2, 5, "both idle connections held")
            assert get(running, "/healthz").status == 503
            for sock in idle:
                sock.close()
            wait_until(lambda: get(running, "/healthz").status == 200, 10, "a slot to free up")

    def test_http_host_chooses_the_interface(
        self, probes: Probes, registry: CollectorRegistry
    ) -> None:
        """The server binds the host it is given (HTTP_HOST), here loopback only."""
        with HealthServer(
            0, registry, probes.liveness, probes.readiness, host="127.0.0.1"
        ) as running:
            assert running.host == "127.0.0.1"
        assert RunnerSettings(kafka={}).http_host == "0.0.0.0"


@pytest.mark.integration
class TestDlqPathReadiness:
    def test_a_missing_dlq_topic_keeps_the_service_unready_until_it_is_created(
        self, kafka_bootstrap_servers: str
    ) -> None:
        """The DLQ path check names a DLQ topic that does not exist, and passes once it exists and the broker allows WRITE (issue 22, finding 5)."""
        topic = f"dlq-{uuid.uuid4().hex[:8]}"
        config = {"bootstrap.servers": kafka_bootstrap_servers, "enable.idempotence": "true"}
        check = DlqPathCheck(config, topic)

        assert check.problem() is not None  # unproven until checked
        assert check.check_once() == f"DLQ topic {topic} does not exist"
        create_topics(kafka_bootstrap_servers, [topic], partitions=1)
        assert check.check_once() is None
        assert check.problem() is None
