"""`main()` for a consumer process: settings, logging, metrics, health, signals, the loop.

Every service's entry point is `run_service(...)` with a function that builds its
`ConsumerSpec` from its settings. Everything stateful (settings, clients, registry, database
engines) is created here or in that function, at start-up, never at import.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid configuration or a database
schema this release cannot run on (one line on stderr, no traceback), 1 after a critical error,
a fatal client error (the consumer or the DLQ producer failed for good: `/healthz` fails at
once, and a new process is what recovers it) or a shutdown that overran its deadline.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import structlog
from prometheus_client import CollectorRegistry

from common.errors import FatalClientError
from common.handlers import ConsumerSpec
from common.health import HealthServer, Liveness
from common.kafka import KafkaConfigError, KafkaConsumer, KafkaProducer
from common.kafka.admin import dlq_write_problem
from common.kafka.client import client_log
from common.lifecycle import Bus, ConsumerError, LifecycleEvent
from common.logs import LogSubscriber, configure_logging
from common.metrics import RuntimeMetrics
from common.runner import Runner
from common.schema import SchemaMismatch
from common.settings import ConfigurationError, RunnerSettings, load_settings

S = TypeVar("S", bound=RunnerSettings)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def run_service(
    settings_cls: type[S],
    build: Callable[[S, CollectorRegistry], ConsumerSpec],
    *,
    service: str,
) -> int:
    """Run one consumer service until SIGTERM/SIGINT; returns the process exit code."""
    try:
        settings = load_settings(settings_cls)
    except ConfigurationError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(level=settings.log_level, fmt=settings.log_format, service=service)
    log = structlog.get_logger("common.service")
    registry = CollectorRegistry()
    liveness = Liveness(settings.liveness_timeout_seconds)
    try:
        spec = build(settings, registry)
        runner = _runner(spec, settings, registry, liveness.beat)
    except (ConfigurationError, KafkaConfigError) as exc:
        print(f"{service}: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SchemaMismatch as exc:  # waiting or restarting will not fix it: say what will
        print(f"{service}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # e.g. the database unreachable at start: say so in one line
        log.error("service.start_failed", error_type=type(exc).__name__, error=str(exc)[:500])
        return EXIT_FAILURE
    dlq_path = DlqPathCheck(settings.producer_config(), runner.dlq_topic)
    health = health_server(runner, spec, settings, registry, liveness, dlq_path=dlq_path.problem)
    health.start()
    log.info(
        "service.started", group=spec.group_id, http_port=health.port, dlq_topic=runner.dlq_topic
    )
    _on_signals(lambda: _request_stop(runner, settings.shutdown_timeout_seconds))
    tune_gc()
    dlq_path.start()
    try:
        return run_loop(runner)
    finally:
        dlq_path.stop()
        health.stop()


def run_loop(runner: Runner) -> int:
    """Run the loop to its end; returns the exit code, having logged why it ended."""
    log = structlog.get_logger("common.service")
    try:
        reason = runner.run()
    except FatalClientError:  # named once already (consumer.error); no traceback to add
        log.error("service.stopped", reason="fatal client error", exit_code=EXIT_FAILURE)
        return EXIT_FAILURE
    except Exception as exc:
        log.error("service.stopped", reason=str(exc), exc_info=True)
        return EXIT_FAILURE
    log.info("service.stopped", reason=reason)
    return EXIT_OK


class DlqPathCheck:
    """Whether the DLQ can be written (`dlq_write_problem`), checked in the background.

    Checked once at start, then again every `interval_s` for as long as it fails, so
    readiness turns green once the topic is created or the ACL granted; a failure later on
    shows in the DLQ writes themselves (retried, or fatal).
    """

    def __init__(
        self,
        producer_config: dict[str, str],
        topic: str,
        *,
        interval_s: float = 15.0,
        check: Callable[[dict[str, str], str], str | None] = dlq_write_problem,
    ) -> None:
        self._config = producer_config
        self._topic = topic
        self._interval_s = interval_s
        self._check = check
        self._problem: str | None = f"checking that DLQ topic {topic} can be written"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dlq-path-check", daemon=True)

    def problem(self) -> str | None:
        """Why the DLQ cannot be written, or None once it was shown it can."""
        return self._problem

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop checking, and wait a little for a check in flight, so its admin client is
        usually destroyed before the interpreter finalizes (a librdkafka thread calling back
        into a finalizing Python can crash the process on exit). Bounded well inside
        SHUTDOWN_TIMEOUT_SECONDS (10 s by default), which ends the process with exit 1 when
        overrun: a check stuck on an unreachable broker is left to the daemon thread."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def check_once(self) -> str | None:
        before = self._problem
        try:
            self._problem = self._check(self._config, self._topic)
        except Exception as exc:  # the check itself failed: say which way, not its text
            self._problem = f"DLQ check failed: {type(exc).__name__}"
        if self._problem != before:  # the detail (topic...) is for the log, not the probe
            log = structlog.get_logger("common.service")
            if self._problem is None:
                log.info("dlq_path.ok", dlq_topic=self._topic)
            else:
                log.warning("dlq_path.failing", problem=self._problem)
        return self._problem

    def _run(self) -> None:
        while self.check_once() is not None and not self._stopped.wait(self._interval_s):
            pass


def tune_gc() -> None:
    """Move start-up objects out of the collector's way and collect young objects less often.

    Each record allocates a few dozen short-lived containers (a parsed event is two structs,
    datetimes, decimals, the record); reference counting frees them, yet with the default
    thresholds the cyclic collector runs every 700 allocations and rescans the young
    generation, a large share of the run loop's time (docs/performance.md). `gc.freeze()` also
    keeps the long-lived start-up objects (modules, settings, templates) out of every scan.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _runner(
    spec: ConsumerSpec,
    settings: RunnerSettings,
    registry: CollectorRegistry,
    heartbeat: Callable[[], None],
) -> Runner:
    bus = Bus([LogSubscriber(), RuntimeMetrics(registry, spec.name), note_client_error])
    consumer_config = settings.consumer_config(spec.group_id)
    producer = KafkaProducer(
        settings.producer_config() | _bootstrap(consumer_config), name="DLQ producer"
    )
    return Runner(
        spec,
        settings,
        lambda listener: KafkaConsumer(consumer_config, listener),
        producer,
        bus,
        heartbeat=heartbeat,
        client_check=producer.check,
    )


def note_client_error(event: LifecycleEvent) -> None:
    """Remember the cause of an error the consumer handed back, for readiness."""
    if isinstance(event, ConsumerError):
        client_log.note_error(event.code, event.message)


def _bootstrap(consumer_config: dict[str, str]) -> dict[str, str]:
    return {"bootstrap.servers": consumer_config["bootstrap.servers"]}


def health_server(
    runner: Runner,
    spec: ConsumerSpec,
    settings: RunnerSettings,
    registry: CollectorRegistry,
    liveness: Liveness,
    *,
    dlq_path: Callable[[], str | None] = lambda: None,
    client_cause: Callable[[], str | None] = client_log.cause,
) -> HealthServer:
    """The health server of `runner`: alive while the loop beats and no client is fatal;
    ready when every check passes, `/readyz` naming each one that does not.

    What a probe is told is a check name and a stable category (`waiting for assignment:
    broker unreachable`, `authorization failed: no WRITE`, `retrying OperationalError`),
    never a topic, a host or a client's or database's message: the port answers whoever
    reaches it. The details are in the log.
    """

    def alive() -> bool:
        return runner.fatal is None and liveness()

    def readiness() -> tuple[bool, dict[str, str]]:
        fatal, dlq_problem, outage = runner.fatal, dlq_path(), runner.outage
        checks = {
            "partitions_assigned": "ok" if runner.ready else _waiting(client_cause()),
            "processing": "ok" if outage is None else f"retrying {_error_type(outage)}",
            "client": "ok" if fatal is None else f"fatal: {fatal.client} {fatal.code}",
            "dlq_path": "ok" if dlq_problem is None else dlq_path_category(dlq_problem),
        }
        for name, check in spec.readiness_checks.items():
            checks[name] = "ok" if _safe(check) else "failing"
        return all(v == "ok" for v in checks.values()), checks

    return HealthServer(
        settings.http_port,
        registry,
        liveness=alive,
        readiness=readiness,
        host=settings.http_host,
    )


def _waiting(cause: str | None) -> str:
    return "waiting for assignment" if cause is None else f"waiting for assignment: {cause}"


_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _error_type(outage: str) -> str:
    """The error type of an outage (`Type: message`), its message left to the log."""
    name = outage.split(":", 1)[0].strip()
    return name if _CODE.fullmatch(name) else "error"


def dlq_path_category(problem: str) -> str:
    """The stable category of a DLQ path problem (`DlqPathCheck`), without the topic."""
    if problem.startswith("checking"):
        return "checking"
    if problem.endswith("does not exist"):
        return "topic missing"
    for operation in ("DESCRIBE", "WRITE"):
        if f"no {operation} permission" in problem:
            return f"authorization failed: no {operation}"
    for marker, label in (
        ("could not be described: ", "not described"),
        ("check failed: ", "check failed"),
    ):
        _head, found, code = problem.rpartition(marker)
        if found and _CODE.fullmatch(code):
            return f"{label}: {code}"
    return "failing"


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def _request_stop(runner: Runner, deadline_s: float) -> None:
    """Stop the loop; if it has not returned within `deadline_s`, leave anyway (exit 1)."""
    runner.stop()

    def overran() -> None:
        structlog.get_logger("common.service").error(
            "service.shutdown_overran",
            deadline_s=deadline_s,
            note="exiting without the final commit; uncommitted records will be redelivered",
        )
        os._exit(EXIT_FAILURE)

    timer = threading.Timer(deadline_s, overran)
    timer.daemon = True
    timer.start()


def _on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
