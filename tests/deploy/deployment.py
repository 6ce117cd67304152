"""Reading the deployment files as data: compose.yaml (as docker-compose resolves it) and the Dockerfile.

Shared by tests/deploy/test_compose.py and test_dockerfile.py. Nothing here needs Docker:
`docker-compose config` works offline, and the Dockerfile is read as text.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

import pytest

from common.settings import RunnerSettings
from common.topics import GROUP_ANALYTICS, GROUP_NOTIFICATION, GROUP_VOYAGE
from tests.deploy.service_settings import settings_classes

ROOT: Final = Path(__file__).resolve().parents[2]
COMPOSE_FILE: Final = ROOT / "compose.yaml"
DOCKERFILE: Final = ROOT / "Dockerfile"
DOCKERIGNORE: Final = ROOT / ".dockerignore"
POSTGRES_INIT: Final = ROOT / "deploy" / "postgres-init.sql"
TOPICS_SCRIPT: Final = ROOT / "deploy" / "create-topics.sh"

CONSUMER_GROUPS: Final = {
    "voyage-consumer": GROUP_VOYAGE,
    "notification-consumer": GROUP_NOTIFICATION,
    "analytics-consumer": GROUP_ANALYTICS,
}
"""The three services' commands and their consumer groups (so their DLQ topics)."""

HOST_VARIABLES: Final = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "SMTP_HOST",
)
"""Environment variables that name another service (a host, or a URL or list with hosts)."""


# -- loading ----------------------------------------------------------------------------


def missing_tool(message: str) -> NoReturn:
    """Skip with `message`, or fail when REQUIRE_TOOLS=1 says the tool must be there."""
    if os.environ.get("REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message} and REQUIRE_TOOLS=1")
    pytest.skip(message)


def required_tool(binary: str, hint: str) -> str:
    """The path of `binary`; skips (or fails under REQUIRE_TOOLS=1) naming `hint` when absent."""
    path = shutil.which(binary)
    if path is None:
        missing_tool(f"{binary} is not installed ({hint})")
    return path


def run_compose(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f compose.yaml ARGS`; offline: `config` needs no Docker engine."""
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def parse_yaml(text: str, compose_binary: str) -> Any:
    """PyYAML from this environment if installed, else the one docker-compose itself runs on.

    docker-compose 1.x is a Python program built on PyYAML, so its interpreter can always
    read YAML, even while this project's environment has no PyYAML of its own.
    """
    try:
        import yaml
    except ModuleNotFoundError:
        first_line = Path(compose_binary).read_bytes().split(b"\n", 1)[0].decode(errors="replace")
        if not first_line.startswith("#!") or "python" not in first_line:
            missing_tool("PyYAML is not installed (the project's dev dependencies should have it)")
        script = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
        argv = [*shlex.split(first_line[2:]), "-c", script]
        result = subprocess.run(
            argv, input=text, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            missing_tool(
                f"no YAML parser: PyYAML missing here and in docker-compose's Python ({result.stderr.strip()[-200:]})"
            )
        return json.loads(result.stdout)
    return yaml.safe_load(text)


# -- reading the model ------------------------------------------------------------------


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services of a compose model, by name."""
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings (compose allows a mapping or a list of K=V)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def argv(value: str | list[str] | None) -> list[str]:
    """A `command` or `entrypoint` as an argument list (a string is split like a shell would)."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def consumers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running one of the three consumers, by service name.

    A consumer's command is its script alone or with `run`; the same script with another
    subcommand is a job (compose's `reconcile` one-shot), not a consumer.
    """
    return {
        name: service
        for name, service in services(compose).items()
        if (command := argv(service.get("command")))
        and command[0] in CONSUMER_GROUPS
        and command[1:] in ([], ["run"])
    }


def initialiser(compose: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The one-shot service that runs deploy/create-topics.sh."""
    found = [
        (name, service)
        for name, service in services(compose).items()
        if any("create-topics.sh" in part for part in argv(service.get("entrypoint")))
    ]
    assert len(found) == 1, f"expected one service running create-topics.sh, found {found}"
    return found[0]


def builds_the_dockerfile(service: dict[str, Any]) -> bool:
    """The service's image is built from this repository's Dockerfile."""
    build = service.get("build")
    if build is None:
        return False
    context, dockerfile = (
        (build, "Dockerfile")
        if isinstance(build, str)
        else (
            build.get("context", "."),
            build.get("dockerfile", "Dockerfile"),
        )
    )
    return (ROOT / context).resolve() == ROOT and dockerfile == "Dockerfile"


def healthcheck(service: dict[str, Any]) -> list[str] | None:
    """The health test compose runs for `service` (its own, else its image's), or None."""
    check = service.get("healthcheck")
    if check is not None:
        test = argv(check.get("test"))
        if check.get("disable") or test[:1] == ["NONE"]:
            return None
        if test:
            return test
    if builds_the_dockerfile(service):
        return ["HEALTHCHECK from the Dockerfile", *dockerfile_healthcheck()]
    return None


def dependencies(service: dict[str, Any]) -> dict[str, str | None]:
    """What `service` waits for before it starts: {service: condition or None}."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends)
    return {name: (spec or {}).get("condition") for name, spec in depends.items()}


def host_ports(service: dict[str, Any]) -> list[str]:
    """Ports `service` publishes on the host (short or long syntax); empty if none."""
    published = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published"):
                published.append(str(port["published"]))
        elif ":" in str(port):
            published.append(str(port).rsplit(":", 2)[-2])
        else:
            published.append(f"(ephemeral for {port})")
    return published


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports `service` offers on the compose network: `expose` and the targets of `ports`."""
    ports = {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    for port in service.get("ports") or []:
        target = port.get("target") if isinstance(port, dict) else str(port).rsplit(":", 1)[-1]
        ports.add(int(str(target).split("/")[0]))
    return ports


def addresses(variable: str, value: str) -> list[tuple[str, int | None]]:
    """The (host, port) pairs a host-naming variable points at."""
    if variable.endswith("BOOTSTRAP_SERVERS"):
        return [(host, int(port)) for host, port in (a.rsplit(":", 1) for a in value.split(","))]
    if variable == "DATABASE_URL":
        url = urlsplit(value)
        return [(url.hostname, url.port or 5432)] if url.hostname else []
    return [(value, None)]


def duration_s(text: str) -> float:
    """A compose duration (`1m30s`, `30s`, `500ms`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"([0-9.]+)(ms|us|h|m|s)", text)
    assert parts, f"not a duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def settings_class_for(command: str) -> type[RunnerSettings]:
    """The settings class a consumer command reads (its package's, else `RunnerSettings`)."""
    classes = settings_classes(command.replace("-", "_"))
    return classes[-1] if classes else RunnerSettings


# -- the Dockerfile, read as instructions -------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per build stage (the last one is the image that runs)."""
    stages: list[list[tuple[str, str]]] = []
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args))
    return stages


def dockerfile_healthcheck() -> list[str]:
    """The runtime stage's HEALTHCHECK as `[options..., CMD, command]`."""
    checks = [args for instruction, args in dockerfile_stages()[-1] if instruction == "HEALTHCHECK"]
    assert len(checks) == 1, f"expected one HEALTHCHECK in the runtime stage, found {checks}"
    options, _, command = checks[0].partition("CMD ")
    return [*options.split(), "CMD", command.strip()]


def build_args() -> dict[str, str]:
    """Defaults of the ARGs declared before the first FROM."""
    defaults = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            defaults[name.strip()] = value.strip()
    return defaults


def dockerignore_patterns() -> set[str]:
    """The entries of .dockerignore, without comments or trailing slashes."""
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return {line.rstrip("/") for line in lines if line and not line.startswith("#")}
