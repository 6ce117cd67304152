"""What an unauthenticated probe is told: check names and stable causes, never internal text.

`/readyz` and `/healthz` answer whoever reaches the port (`HTTP_HOST` is 0.0.0.0 so the
kubelet and Prometheus can). Their bodies carry check names and cause categories only;
topic names, hosts and client or database messages go to the log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from common import service
from common.errors import FatalClientError
from common.handlers import ConsumerSpec
from common.health import Liveness
from common.kafka.client import ClientLog
from common.lifecycle import ConsumerError
from common.runner import Runner
from common.settings import RunnerSettings

DLQ = "dreamscape.dlq.voyage-service"
SECRETS = (DLQ, "db.internal", "5432", "10.0.0.7", "voyage-service")


@dataclass
class FakeRunner:
    ready: bool = False
    outage: str | None = None
    fatal: FatalClientError | None = None
    calls: list[str] = field(default_factory=list)


def readyz(
    runner: FakeRunner,
    *,
    dlq_problem: str | None = None,
    cause: str | None = None,
    checks: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any], bytes]:
    spec = ConsumerSpec(
        name="unit", group_id="unit", handle=lambda batch: None, readiness_checks=checks or {}
    )
    health = service.health_server(
        cast(Runner, runner),
        spec,
        RunnerSettings(),
        CollectorRegistry(),
        Liveness(60.0),
        dlq_path=lambda: dlq_problem,
        client_cause=lambda: cause,
    )
    status, _type, body = health.respond("/readyz", None)
    return status, json.loads(body), body


class TestReadyzBody:
    def test_waiting_for_assignment_names_the_last_client_errors_cause(self) -> None:
        """Not yet assigned, /readyz says why in a category: the broker is unreachable."""
        status, body, _raw = readyz(FakeRunner(), cause="broker unreachable")
        assert status == 503
        assert body["checks"]["partitions_assigned"] == "waiting for assignment: broker unreachable"

    def test_waiting_for_assignment_without_a_client_error_says_only_that(self) -> None:
        """With no recent client error the check says it is waiting, nothing more."""
        _status, body, _raw = readyz(FakeRunner())
        assert body["checks"]["partitions_assigned"] == "waiting for assignment"

    def test_an_assigned_member_is_ok_whatever_the_last_error(self) -> None:
        """Once assigned, an old client error does not fail the check."""
        status, body, _raw = readyz(FakeRunner(ready=True), cause="broker unreachable")
        assert status == 200
        assert body["checks"]["partitions_assigned"] == "ok"

    @pytest.mark.parametrize(
        ("problem", "category"),
        [
            (f"checking that DLQ topic {DLQ} can be written", "checking"),
            (f"DLQ topic {DLQ} does not exist", "topic missing"),
            (
                f"authorization: no DESCRIBE permission on DLQ topic {DLQ}",
                "authorization failed: no DESCRIBE",
            ),
            (
                f"authorization: no WRITE permission on DLQ topic {DLQ}",
                "authorization failed: no WRITE",
            ),
            (f"DLQ topic {DLQ} could not be described: _TRANSPORT", "not described: _TRANSPORT"),
            ("DLQ check failed: KafkaConfigError", "check failed: KafkaConfigError"),
            (f"something new about {DLQ} at 10.0.0.7", "failing"),
        ],
    )
    def test_the_dlq_path_is_a_category_without_the_topic(
        self, problem: str, category: str
    ) -> None:
        """Each DLQ path problem reads as a stable category; the topic name is not in the body."""
        _status, body, raw = readyz(FakeRunner(ready=True), dlq_problem=problem)
        assert body["checks"]["dlq_path"] == category
        assert DLQ.encode() not in raw

    def test_an_outage_names_the_error_type_only(self) -> None:
        """A transient outage reads as the retried error's type, never its message (hosts, SQL)."""
        outage = (
            "OperationalError: connection to server at db.internal (10.0.0.7), port 5432 failed"
        )
        _status, body, raw = readyz(FakeRunner(ready=True, outage=outage))
        assert body["checks"]["processing"] == "retrying OperationalError"
        assert not any(secret.encode() in raw for secret in SECRETS)

    def test_a_fatal_client_error_is_named_by_its_code(self) -> None:
        """A fatal client error names the client and the error code, not librdkafka's text."""
        fatal = FatalClientError(
            "consumer",
            "FENCED_INSTANCE_ID",
            "Broker: Static consumer fenced by other consumer with same group.instance.id",
        )
        _status, body, raw = readyz(FakeRunner(ready=True, fatal=fatal))
        assert body["checks"]["client"] == "fatal: consumer FENCED_INSTANCE_ID"
        assert b"group.instance.id" not in raw

    def test_every_failing_check_at_once_carries_nothing_internal(self) -> None:
        """Everything failing together: the body names each check, and no topic, host or message."""
        status, body, raw = readyz(
            FakeRunner(outage="OperationalError: db.internal:5432 refused"),
            dlq_problem=f"DLQ topic {DLQ} does not exist",
            cause="authentication failed",
            checks={"database": lambda: False},
        )
        assert status == 503
        assert set(body["checks"]) == {
            "partitions_assigned",
            "processing",
            "client",
            "dlq_path",
            "database",
        }
        assert not any(secret.encode() in raw for secret in SECRETS)


class TestDetailsGoToTheLog:
    def test_a_dlq_path_problem_is_logged_with_its_detail_once_per_change(self) -> None:
        """The DLQ check logs the full problem (topic included) when it changes, not at every check."""
        answers = [f"DLQ topic {DLQ} does not exist"] * 3 + [None]
        path = service.DlqPathCheck({}, DLQ, check=lambda _c, _t: answers.pop(0))
        with capture_logs() as entries:
            for _ in range(4):
                path.check_once()
        assert [e["event"] for e in entries] == ["dlq_path.failing", "dlq_path.ok"]
        assert entries[0]["problem"] == f"DLQ topic {DLQ} does not exist"

    def test_a_consumed_client_error_is_remembered_as_a_cause(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An authorization error the consumer hands back becomes the cause readiness names."""
        client_log = ClientLog()
        monkeypatch.setattr(service, "client_log", client_log)
        service.note_client_error(
            ConsumerError("GROUP_AUTHORIZATION_FAILED", "Broker: Group authorization failed", False)
        )
        assert client_log.cause() == "authorization failed"
