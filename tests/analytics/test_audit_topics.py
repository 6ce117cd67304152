"""The topics' retention, set by deploy/create-topics.sh as compose.yaml runs it.

Kafka keeps the payment topics for a replay window and the DLQ topics longer; the 7-year
archive is the audit table (tests in `test_audit`). The script is run with stubs in place
of Kafka's `kafka-topics.sh` and `kafka-configs.sh`, which record their arguments.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deployment import COMPOSE_FILE, TOPICS_SCRIPT

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def initialiser() -> dict[str, Any]:
    """compose.yaml's one-shot service that runs deploy/create-topics.sh."""
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    found: list[dict[str, Any]] = [
        s
        for s in services.values()
        if "/deploy/create-topics.sh" in " ".join(s.get("entrypoint", []))
    ]
    assert len(found) == 1, "expected one service running create-topics.sh"
    return found[0]


def _stub(path: Path) -> Path:
    path.write_text(
        '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
        'case "$*" in *--describe*) echo "Topic: t  PartitionCount: 6";; esac\n'
    )
    path.chmod(0o755)
    return path


def _run(initialiser: dict[str, Any], tmp_path: Path, *, configs_tool: bool) -> list[list[str]]:
    calls = tmp_path / "calls.txt"
    env = {
        **{k: str(v) for k, v in initialiser["environment"].items()},
        "TOPICS_TOOL": str(_stub(tmp_path / "kafka-topics.sh")),
        "CONFIGS_TOOL": str(
            _stub(tmp_path / "kafka-configs.sh") if configs_tool else tmp_path / "absent.sh"
        ),
        "CALLS": str(calls),
        "PATH": os.environ["PATH"],
    }
    done = subprocess.run(
        ["sh", str(TOPICS_SCRIPT), *initialiser["command"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line.split() for line in calls.read_text().splitlines()]


def _retention(call: list[str], flag: str) -> int:
    setting = call[call.index(flag) + 1]
    assert setting.startswith("retention.ms=")
    return int(setting.removeprefix("retention.ms="))


class TestTopicRetention:
    def test_payment_topics_keep_30_days_and_dlq_topics_a_year(
        self, initialiser: dict[str, Any], tmp_path: Path
    ) -> None:
        """Each payment topic is created with retention.ms of 30 days, each DLQ topic with 365."""
        calls = _run(initialiser, tmp_path, configs_tool=True)
        created = {
            c[c.index("--topic") + 1]: _retention(c, "--config") for c in calls if "--create" in c
        }
        assert set(created) == set(initialiser["command"])
        for topic, retention in created.items():
            days = 365 if ".dlq." in topic else 30
            assert retention == days * DAY_MS, topic
        assert sum(".dlq." not in t for t in created) == 4

    def test_an_existing_topic_gets_its_retention_set_too(
        self, initialiser: dict[str, Any], tmp_path: Path
    ) -> None:
        """`kafka-configs.sh --alter` sets the same retention on every topic, since --if-not-exists skips existing ones."""
        calls = _run(initialiser, tmp_path, configs_tool=True)
        created = {
            c[c.index("--topic") + 1]: _retention(c, "--config") for c in calls if "--create" in c
        }
        altered = {
            c[c.index("--entity-name") + 1]: _retention(c, "--add-config")
            for c in calls
            if c[0] == "kafka-configs.sh"
        }
        assert altered == created
        assert all("--alter" in c for c in calls if c[0] == "kafka-configs.sh")

    def test_without_kafka_configs_the_script_warns_and_still_creates(
        self, initialiser: dict[str, Any], tmp_path: Path
    ) -> None:
        """No kafka-configs.sh: topics are still created with their retention, nothing altered."""
        calls = _run(initialiser, tmp_path, configs_tool=False)
        assert sum("--create" in c for c in calls) == len(initialiser["command"])
        assert not [c for c in calls if c[0] == "kafka-configs.sh"]
