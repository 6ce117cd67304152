"""The three services as separate processes, configured the way an operator would.

Each service runs as `python -m <package>` with only environment variables, like in
production, so the demo exercises the real entry points, settings validation, signal
handling and exit codes. Output goes to one log file per service, never a pipe (a full pipe
would block the service).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common.topics import GROUP_ANALYTICS, GROUP_NOTIFICATION, GROUP_VOYAGE

STOP_TIMEOUT_S: Final = 25.0
"""Longer than the services' own `SHUTDOWN_TIMEOUT_SECONDS` (10), so they decide, not us."""

#: Only for the embedded Tansu broker, whose first group join waits for the session timeout.
#: On Apache Kafka the demo keeps librdkafka's 45 s: a 1 s session is shorter than a broker
#: failover, and every coordinator move would then cost the members their partitions.
TANSU_FAST_JOIN: Final[Mapping[str, str]] = {
    "KAFKA_SESSION_TIMEOUT_MS": "1000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "100",
}
DEMO_KAFKA: Final[Mapping[str, str]] = {
    "KAFKA_AUTO_COMMIT_INTERVAL_MS": "500",  # commits are what the progress line watches
    "KAFKA_FETCH_WAIT_MAX_MS": "50",  # Tansu answers an empty fetch only after this wait
}


@dataclass(frozen=True, slots=True)
class ServiceDef:
    """What the demo needs to know to run one service and judge its progress."""

    name: str
    module: str
    group: str


SERVICES: Final = (
    ServiceDef("voyage", "voyage_consumer", GROUP_VOYAGE),
    ServiceDef("notification", "notification_consumer", GROUP_NOTIFICATION),
    ServiceDef("analytics", "analytics_consumer", GROUP_ANALYTICS),
)


PASSED_THROUGH: Final = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
)
"""The only variables of the caller's environment the services see: a developer's exported
`BATCH_SIZE`, `SMTP_SSL` or `KAFKA_*` must not change what the demo shows."""


def base_env() -> dict[str, str]:
    """The part of the caller's environment any process the demo starts may see."""
    return {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}


def service_env(
    bootstrap: str, database_url: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The complete environment of one service: the demo's settings and the bare essentials."""
    return {
        **base_env(),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        **DEMO_KAFKA,
        "DATABASE_URL": database_url,
        "HTTP_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "console",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


@dataclass
class ServiceProcess:
    """One running service and the file its output goes to."""

    definition: ServiceDef
    process: subprocess.Popen[bytes]
    log: Path
    _terminated: bool = False

    @classmethod
    def start(cls, definition: ServiceDef, env: Mapping[str, str], log: Path) -> ServiceProcess:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", definition.module],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return cls(definition, process, log)

    @property
    def name(self) -> str:
        return self.definition.name

    def exit_code(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.process.poll()

    def tail(self, lines: int = 10) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        """Send SIGTERM once; a second one could land while Python finalises and kill it."""
        if not self._terminated and self.process.poll() is None:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """The exit code; a service still running after `timeout_s` is killed (-9)."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -signal.SIGKILL


def stop_all(services: list[ServiceProcess]) -> dict[str, int]:
    """SIGTERM every service at once, then collect each exit code."""
    for service in services:
        service.terminate()
    return {service.name: service.wait() for service in services}


def first_death(services: Sequence[ServiceProcess]) -> ServiceProcess | None:
    """A service that exited on its own (none should before the demo stops them)."""
    return next((s for s in services if s.exit_code() is not None), None)
