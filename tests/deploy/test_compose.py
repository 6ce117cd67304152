"""compose.yaml, the Dockerfile and deploy/ fit together: checked offline, without Docker.

`docker-compose config` validates compose.yaml and resolves it (anchors merged, paths made
absolute); the tests then read that resolved model and check the wiring a typo would break
silently at `docker compose up`: hosts, databases, topics, health, start-up order, scaling.
Without docker-compose these tests skip, or fail under REQUIRE_TOOLS=1 (the Dockerfile's
own tests, in test_dockerfile.py, need no tool).
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest

from common.settings import RunnerSettings, load_settings
from common.topics import GROUP_ANALYTICS, GROUP_NOTIFICATION, GROUP_VOYAGE, Topics
from dreamscape_dev.testing.apache_kafka import kafka_version
from tests.deploy.deployment import (
    CONSUMER_GROUPS,
    HOST_VARIABLES,
    POSTGRES_INIT,
    ROOT,
    TOPICS_SCRIPT,
    addresses,
    argv,
    builds_the_dockerfile,
    consumers,
    container_ports,
    dependencies,
    duration_s,
    environment,
    healthcheck,
    host_ports,
    initialiser,
    run_compose,
    services,
    settings_class_for,
)
from tests.deploy.service_settings import env_name, own_fields

PARTITIONS: Final = 6
ONE_SHOT_CONDITION: Final = "service_completed_successfully"
HEALTHY_CONDITION: Final = "service_healthy"


class TestComposeFile:
    """docker-compose accepts the file."""

    def test_docker_compose_validates_it(self, docker_compose: str) -> None:
        """`docker-compose -f compose.yaml config -q` exits 0 (schema, anchors, conditions)."""
        result = run_compose(docker_compose, "config", "-q")
        assert result.returncode == 0, result.stderr


class TestWiring:
    """Every name a service uses (hosts, databases, topics, commands) exists where it points."""

    def test_every_host_a_service_points_at_is_a_service_offering_that_port(
        self, compose: dict[str, Any]
    ) -> None:
        """KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and SMTP_HOST name services of the file, on ports they offer."""
        all_services = services(compose)
        checked = []
        for name, service in all_services.items():
            env = environment(service)
            for variable in HOST_VARIABLES:
                if variable not in env:
                    continue
                for host, port in addresses(variable, env[variable]):
                    if variable == "SMTP_HOST":
                        port = int(env.get("SMTP_PORT", "25"))
                    checked.append((name, variable))
                    assert host in all_services, (
                        f"{name}: {variable} points at unknown host {host!r}"
                    )
                    offered = container_ports(all_services[host])
                    assert port in offered, (
                        f"{name}: {variable} uses {host}:{port}; {host} offers {sorted(offered)}"
                    )
        assert checked, "no service names a host: the environment was not read"

    def test_consumers_name_their_broker_database_and_mail_server(
        self, compose: dict[str, Any]
    ) -> None:
        """Each consumer sets KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL, and SMTP_HOST if its settings have one."""
        found = consumers(compose)
        assert found, "no service runs a consumer"
        for name, service in found.items():
            cls = settings_class_for(argv(service["command"])[0])
            required = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
            if "smtp_host" in cls.model_fields:
                required.add("SMTP_HOST")
            missing = required - environment(service).keys()
            assert not missing, f"{name} would fall back to its defaults for {sorted(missing)}"

    def test_every_port_published_on_the_host_is_bound_to_loopback(
        self, compose: dict[str, Any]
    ) -> None:
        """Mailpit's UI (every email the services send) is published on 127.0.0.1 only, never on all interfaces (issue 10, finding 19)."""
        for name, service in services(compose).items():
            for port in service.get("ports") or []:
                text = str(port.get("host_ip", "") if isinstance(port, dict) else port)
                assert text.startswith("127.0.0.1"), f"{name} publishes {port} beyond loopback"

    def test_the_kafka_image_is_the_release_the_suite_runs_on(
        self, compose: dict[str, Any]
    ) -> None:
        """compose.yaml's apache/kafka image has the major.minor of the Apache Kafka the tests start."""
        image = services(compose)["kafka"]["image"]
        name, tag = image.split(":")
        assert name == "apache/kafka"
        assert tag.split(".")[:2] == kafka_version().split(".")[:2]

    def test_kafka_advertises_names_its_clients_can_reach(self, compose: dict[str, Any]) -> None:
        """The broker's advertised listeners and controller voters name the kafka service itself."""
        env = environment(services(compose)["kafka"])
        advertised = [
            urlsplit(url).hostname for url in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        ]
        voters = [
            voter.split("@", 1)[1].rsplit(":", 1)[0]
            for voter in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        ]
        assert set(advertised) | set(voters) == {"kafka"}

    def test_each_consumer_has_its_own_database_created_at_initialisation(
        self, compose: dict[str, Any]
    ) -> None:
        """Each consumer's DATABASE_URL names a database of its own that deploy/postgres-init.sql creates."""
        created = set(re.findall(r"CREATE DATABASE\s+\"?(\w+)\"?", POSTGRES_INIT.read_text(), re.I))
        databases = {
            name: urlsplit(environment(service)["DATABASE_URL"]).path.lstrip("/")
            for name, service in consumers(compose).items()
        }
        assert len(set(databases.values())) == len(databases), f"shared databases: {databases}"
        for name, database in databases.items():
            assert database in created, (
                f"{name} uses {database!r}; the init script creates {sorted(created)}"
            )
        mounts = [str(v) for v in services(compose)["postgres"].get("volumes", [])]
        assert any(
            str(POSTGRES_INIT) in m and "/docker-entrypoint-initdb.d/" in m for m in mounts
        ), f"deploy/postgres-init.sql is not mounted into /docker-entrypoint-initdb.d: {mounts}"

    def test_the_initialiser_creates_every_topic_the_services_use(
        self, compose: dict[str, Any]
    ) -> None:
        """The four payment topics and the three services' DLQ topics are created, 6 partitions each."""
        _, service = initialiser(compose)
        topics = Topics()
        groups = (GROUP_VOYAGE, GROUP_NOTIFICATION, GROUP_ANALYTICS)
        used = {*topics.payment_topics, *(topics.dlq(group) for group in groups)}
        created = set(argv(service.get("command")))
        assert used <= created, f"not created: {sorted(used - created)}"
        assert environment(service)["PARTITIONS"] == str(PARTITIONS)

    def test_consumers_use_the_topics_the_initialiser_creates(
        self, compose: dict[str, Any]
    ) -> None:
        """No consumer moves its topics elsewhere (TOPIC_PREFIX, DLQ_TOPIC, another group)."""
        created = set(argv(initialiser(compose)[1].get("command")))
        for name, service in consumers(compose).items():
            env = environment(service)
            command = argv(service["command"])[0]
            assert not env.get("TOPIC_PREFIX"), (
                f"{name} sets TOPIC_PREFIX: its topics are not created"
            )
            dlq = env.get("DLQ_TOPIC") or Topics().dlq(CONSUMER_GROUPS[command])
            assert dlq in created, f"{name} dead-letters to {dlq}, which is not created"
            cls = settings_class_for(command)
            group_variables = {env_name(cls, f) for f in own_fields(cls) if "group" in f}
            assert not group_variables & env.keys(), f"{name} overrides its consumer group"

    def test_the_initialiser_script_creates_each_topic_idempotently(
        self, compose: dict[str, Any], tmp_path: Path
    ) -> None:
        """deploy/create-topics.sh, given the compose arguments, creates each topic once with --if-not-exists and 6 partitions."""
        _, service = initialiser(compose)
        calls = tmp_path / "calls.txt"
        stub = tmp_path / "kafka-topics.sh"
        stub.write_text(
            '#!/bin/sh\necho "$*" >> "$CALLS"\n'
            'case "$*" in *--describe*) echo "Topic: t  PartitionCount: 6";; esac\n'
        )
        stub.chmod(0o755)
        env = {
            **environment(service),
            "TOPICS_TOOL": str(stub),
            "CALLS": str(calls),
            "PATH": os.environ["PATH"],
        }
        topics = argv(service.get("command"))
        result = subprocess.run(
            ["sh", str(TOPICS_SCRIPT), *topics],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        creations = [line.split() for line in calls.read_text().splitlines() if "--create" in line]
        assert [c[c.index("--topic") + 1] for c in creations] == topics
        for call in creations:
            assert "--if-not-exists" in call
            assert call[call.index("--partitions") + 1] == str(PARTITIONS)
            assert call[call.index("--bootstrap-server") + 1] == "kafka:9092"

    def test_the_three_consumers_run_from_the_one_image(self, compose: dict[str, Any]) -> None:
        """voyage, notification and analytics each run once, all built from this Dockerfile as one image."""
        found = consumers(compose)
        commands = sorted(argv(s["command"])[0] for s in found.values())
        assert commands == sorted(CONSUMER_GROUPS)
        assert all(builds_the_dockerfile(s) for s in found.values())
        assert len({s.get("image") for s in found.values()}) == 1

    def test_every_command_run_from_the_image_is_installed_by_it(
        self, compose: dict[str, Any]
    ) -> None:
        """Commands of services built from the Dockerfile are console scripts of pyproject.toml."""
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        for name, service in services(compose).items():
            if builds_the_dockerfile(service):
                command = argv(service.get("command"))
                assert command, f"{name} has no command"
                assert command[0] in scripts, (
                    f"{name} runs {command[:1]}; scripts: {sorted(scripts)}"
                )

    def test_each_consumer_environment_is_a_valid_configuration(
        self, compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The environment compose gives a consumer passes its settings class (no exit 2 at start-up)."""
        for name, service in consumers(compose).items():
            cls = settings_class_for(argv(service["command"])[0])
            known = {env_name(cls, f) for f in cls.model_fields}
            with monkeypatch.context() as patch:
                for variable in list(os.environ):
                    if variable.startswith("KAFKA_") or variable in known:
                        patch.delenv(variable)
                for variable, value in environment(service).items():
                    patch.setenv(variable, value)
                settings = load_settings(cls)  # raises ConfigurationError naming the variable
            assert settings.kafka["bootstrap.servers"] == "kafka:9092", name


class TestStartupAndScaling:
    """Services start in order, report their health, survive failures and scale."""

    def test_scaled_services_publish_no_fixed_host_port(self, compose: dict[str, Any]) -> None:
        """`--scale voyage=3` works: consumers publish no host port and have no container_name."""
        for name, service in consumers(compose).items():
            assert not host_ports(service), f"{name} publishes {host_ports(service)} on the host"
            assert "container_name" not in service, f"{name} has a fixed container_name"
            http_port = int(environment(service).get("HTTP_PORT", "8080"))
            assert http_port in container_ports(service), f"{name} does not expose {http_port}"

    def test_every_dependency_waits_for_health_or_completion(self, compose: dict[str, Any]) -> None:
        """Each depends_on waits for a healthcheck to pass or a one-shot job to succeed."""
        all_services = services(compose)
        for name, service in all_services.items():
            for target, condition in dependencies(service).items():
                assert condition in (HEALTHY_CONDITION, ONE_SHOT_CONDITION), (
                    f"{name} → {target}: {condition}"
                )
                if condition == HEALTHY_CONDITION:
                    assert healthcheck(all_services[target]), (
                        f"{name} waits for {target}'s health, it has none"
                    )
                else:
                    assert str(all_services[target].get("restart", "no")) == "no", (
                        f"{target} is not a one-shot job"
                    )

    def test_every_service_has_a_healthcheck_or_is_a_one_shot_job(
        self, compose: dict[str, Any]
    ) -> None:
        """Long-running services are health-checked; one-shot jobs wait on conditions and do not restart."""
        for name, service in services(compose).items():
            if str(service.get("restart", "no")) == "no":
                assert dependencies(service), f"one-shot {name} waits for nothing"
            else:
                assert healthcheck(service), f"{name} runs without a healthcheck"

    def test_consumers_restart_on_failure_after_their_own_shutdown_deadline(
        self, compose: dict[str, Any]
    ) -> None:
        """Consumers restart on failure, and compose waits longer than SHUTDOWN_TIMEOUT_SECONDS before killing them."""
        for name, service in consumers(compose).items():
            assert service.get("restart") == "on-failure", name
            deadline = float(
                environment(service).get(
                    "SHUTDOWN_TIMEOUT_SECONDS",
                    RunnerSettings.model_fields["shutdown_timeout_seconds"].default,
                )
            )
            grace = duration_s(str(service.get("stop_grace_period", "10s")))
            assert grace > deadline, (
                f"{name}: SIGKILL after {grace}s, before its {deadline}s deadline"
            )

    def test_the_simulator_waits_for_the_topics_and_creates_none(
        self, compose: dict[str, Any]
    ) -> None:
        """The one-shot simulator runs after topic creation and leaves topic creation to it."""
        [(name, service)] = [
            (n, s)
            for n, s in services(compose).items()
            if argv(s.get("command"))[:2] == ["dreamscape", "simulate"]
        ]
        topics_service, _ = initialiser(compose)
        assert dependencies(service).get(topics_service) == ONE_SHOT_CONDITION, name
        assert "--no-create-topics" in argv(service["command"])
