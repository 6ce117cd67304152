"""The HTTP endpoint an orchestrator and Prometheus talk to: liveness, readiness, metrics.

Liveness and readiness answer different questions. Liveness: is the run loop still turning?
(`Liveness` is beaten once per loop iteration; a loop stuck past `max_silence_s` should be
restarted.) Readiness: can the service do useful work right now (assigned partitions, the
database reachable...)? The checks are passed in as callables, so this module knows nothing
of Kafka or databases. The server is the standard library's, in a daemon thread: it needs no
event loop and cannot block the consumer's shutdown.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Readiness = Callable[[], tuple[bool, dict[str, str]]]

_JSON: Final = "application/json"


class Liveness:
    """Alive while `beat()` was called within the last `max_silence_s` seconds."""

    def __init__(self, max_silence_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self._max_silence_s = max_silence_s
        self._now = now
        self._last_beat = now()  # a fresh loop gets the full grace period

    def beat(self) -> None:
        self._last_beat = self._now()

    def __call__(self) -> bool:
        return self._now() - self._last_beat <= self._max_silence_s


class HealthServer:
    """Serves `/healthz`, `/readyz` and `/metrics` from a daemon thread.

    `port=0` binds a free port; `.port` tells which once started. Exposed to whatever can
    reach the port, it protects itself: a request must arrive within `request_timeout_s`
    (a client that sends half a line is disconnected), and beyond `max_connections` open
    connections a new one is answered 503 at once instead of getting another thread.
    """

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        liveness: Callable[[], bool],
        readiness: Readiness,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the pod
        request_timeout_s: float = 5.0,
        max_connections: int = 16,
    ) -> None:
        self._address = (host, port)
        self.request_timeout_s = request_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max_connections = max_connections
        self._registry = registry
        self._liveness = liveness
        self._readiness = readiness
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def active_connections(self) -> int:
        """Connections being served now (each holds one handler thread)."""
        return self._max_connections - self._slots._value  # a gauge, read-only

    def acquire_slot(self) -> bool:
        return self._slots.acquire(blocking=False)

    def release_slot(self) -> None:
        self._slots.release()

    @property
    def port(self) -> int:
        if self._server is None:
            return self._address[1]
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises OSError if the port is taken."""
        if self._server is not None:
            raise RuntimeError("the health server is already running")
        server = _Server(self._address, _Handler)
        server.app = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="health-server"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port; does nothing if not started."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def respond(self, path: str, accept: str | None) -> tuple[int, str, bytes]:
        """Status, content type and body for a GET of `path`."""
        if path == "/healthz":
            alive = self._liveness()
            status = HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE
            return _json(status, {"status": "ok" if alive else "stalled"})
        if path == "/readyz":
            ready, checks = self._readiness()
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return _json(status, {"ready": ready, "checks": checks})
        if path == "/metrics":
            encode, content_type = choose_encoder(accept or "")
            return HTTPStatus.OK, content_type, encode(self._registry)
        return _json(HTTPStatus.NOT_FOUND, {"error": "not found"})


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, _JSON, json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: HealthServer

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve on a thread if a slot is free; else answer 503 from here and close."""
        if not self.app.acquire_slot():
            with contextlib.suppress(OSError):  # the client may be gone already
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.app.release_slot()


_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b'Content-Length: 17\r\nConnection: close\r\n\r\n{"error": "busy"}'
)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.request.settimeout(self.server.app.request_timeout_s)  # a slow client is dropped

    def do_GET(self) -> None:
        try:
            status, content_type, body = self.server.app.respond(
                urlsplit(self.path).path, self.headers.get("Accept")
            )
        except Exception as exc:  # a failing check must answer, not drop the connection
            status, content_type, body = _json(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(exc).__name__}
            )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes arrive every few seconds; logging each would drown the useful lines."""
