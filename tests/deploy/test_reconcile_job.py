"""The daily reconciliation job's three schedulers: compose one-shot, Kubernetes CronJob, cron line.

Each runs a command the CLI accepts, for yesterday, recording its outcome in the database
the analytics service reads, so the service can export it and the alerts can fire.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Final

import pytest
import yaml

from analytics_consumer.cli import _parser
from analytics_consumer.reconciliation_gauges import METRIC_NAMES
from tests.deploy.deployment import ROOT, argv, environment, services
from tests.deploy.observability import mounts
from tests.deploy.test_docs import section

CRONJOB: Final = ROOT / "deploy" / "kubernetes" / "reconcile-cronjob.yaml"  # base/'s, linked
ANALYTICS_DOCS: Final = ROOT / "docs" / "analytics.md"
CRON_FIELD: Final = r"(\*|[0-9]{1,2}(-[0-9]{1,2})?(,[0-9]{1,2})*)(/[0-9]+)?"


def _assert_daily_recorded_run(command: list[str]) -> None:
    """`command` is `analytics-consumer reconcile` for yesterday with --record, as the CLI parses it."""
    assert command[:2] == ["analytics-consumer", "reconcile"], command
    args = _parser().parse_args(command[1:])
    assert args.record, command
    assert "yesterday" in command, command
    assert "{day}" in args.gateway_report, command


def _is_daily(schedule: str) -> bool:
    fields = schedule.split()
    return (
        len(fields) == 5
        and all(re.fullmatch(CRON_FIELD, f) for f in fields)
        and fields[0].isdigit()
        and fields[1].isdigit()
        and fields[2:] == ["*", "*", "*"]
    )


class TestCompose:
    def test_the_reconcile_service_is_a_one_shot_of_its_own_profile(
        self, compose: dict[str, Any]
    ) -> None:
        """compose's `reconcile` runs only with --profile reconcile, never restarts, and waits for PostgreSQL."""
        service = services(compose)["reconcile"]
        assert service["profiles"] == ["reconcile"]
        assert str(service["restart"]) == "no"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"

    def test_it_records_yesterday_into_the_analytics_database(
        self, compose: dict[str, Any]
    ) -> None:
        """Its command is a recorded run of yesterday, on the same DATABASE_URL as the analytics service, reading reports mounted read-only."""
        all_services = services(compose)
        service = all_services["reconcile"]
        _assert_daily_recorded_run(argv(service["command"]))
        assert (
            environment(service)["DATABASE_URL"]
            == environment(all_services["analytics"])["DATABASE_URL"]
        )
        assert "/reports" in mounts(service)
        [volume] = service["volumes"]
        read_only = volume.get("read_only") if isinstance(volume, dict) else volume.endswith(":ro")
        assert read_only


@pytest.fixture(scope="module")
def cronjob() -> dict[str, Any]:
    """The CronJob manifest, one document."""
    [document] = list(yaml.safe_load_all(CRONJOB.read_text()))
    assert isinstance(document, dict)
    return document


class TestKubernetes:
    def test_the_cronjob_runs_once_a_day_in_utc_never_twice_at_once(
        self, cronjob: dict[str, Any]
    ) -> None:
        """A batch/v1 CronJob, daily at a fixed UTC time, concurrencyPolicy Forbid."""
        assert (cronjob["apiVersion"], cronjob["kind"]) == ("batch/v1", "CronJob")
        spec = cronjob["spec"]
        assert _is_daily(spec["schedule"]), spec["schedule"]
        assert spec["timeZone"] == "Etc/UTC"
        assert spec["concurrencyPolicy"] == "Forbid"

    def test_its_container_runs_a_recorded_run_with_the_database_secret(
        self, cronjob: dict[str, Any]
    ) -> None:
        """The pod never restarts in place, runs the CLI's recorded run of yesterday as the image's non-root user, with DATABASE_URL read from a file of a Secret and the reports read-only."""
        job = cronjob["spec"]["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        [container] = pod["containers"]
        _assert_daily_recorded_run(container["command"])
        env = {e["name"]: e for e in container["env"]}
        assert "DATABASE_URL" not in env
        directory, file = env["DATABASE_URL_FILE"]["value"].rsplit("/", 1)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        secret = volumes[mounts[directory]["name"]]["secret"]
        assert secret["secretName"] == "analytics-database"
        assert [item["path"] for item in secret["items"]] == [file]
        reports = mounts["/reports"]
        assert reports["readOnly"] is True
        [rule] = job["podFailurePolicy"]["rules"]
        assert rule["onExitCodes"]["values"] == [2]  # an unreadable report is not retried


class TestCronLine:
    def test_the_documented_cron_line_is_a_daily_recorded_run_without_percent_signs(
        self,
    ) -> None:
        """docs/analytics.md's cron line is daily, in UTC, has no `%` (cron would cut the line there) and runs a command the CLI accepts."""
        text = section(ANALYTICS_DOCS.read_text(), "Reconciliation")
        assert "CRON_TZ=UTC" in text
        lines = [
            line.strip() for line in text.splitlines() if "analytics-consumer reconcile" in line
        ]
        cron = [line for line in lines if re.match(r"[0-9]+ [0-9]+ \* \* \* ", line)]
        assert cron, "no cron line in the Reconciliation section"
        for line in cron:
            assert "%" not in line
            fields = shlex.split(line)
            assert _is_daily(" ".join(fields[:5])), line
            command = fields[5:]
            start = command.index("analytics-consumer")
            _assert_daily_recorded_run(command[start:])


class TestDocumentedMetrics:
    def test_every_reconciliation_metric_is_in_the_docs_table(self) -> None:
        """Each family the collector exports is a row of the Reconciliation section's metric table, and no other is."""
        text = section(ANALYTICS_DOCS.read_text(), "Its result as metrics")
        rows = {
            match[1]
            for line in text.splitlines()
            if (match := re.match(r"\| `(dreamscape_analytics_reconciliation_\w+)", line))
        }
        assert rows == set(METRIC_NAMES)
