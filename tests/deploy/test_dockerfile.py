"""The Dockerfile keeps its promises: stages on python:3.11-slim, non-root, a working HEALTHCHECK.

Read as text (no Docker engine needed); the HEALTHCHECK command itself is run against a real
health server (`common.health`), alive and stalled.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from prometheus_client import CollectorRegistry

from common.health import HealthServer
from tests.deploy.deployment import (
    ROOT,
    build_args,
    dockerfile_healthcheck,
    dockerfile_instructions,
    dockerfile_stages,
    dockerignore_patterns,
)

TOOLING = ("dreamscape_dev",)


class TestDockerfile:
    """The image: multi-stage on python:3.11-slim, non-root, health-checked, no caches."""

    def test_builds_in_stages_on_python_3_11_slim(self) -> None:
        """A build stage and a runtime stage, both python:3.11-slim; the runtime copies the venv."""
        stages = dockerfile_stages()
        assert len(stages) >= 2
        args = build_args()
        for stage in stages:
            base = stage[0][1].split()[0]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), base)
            assert base == "python:3.11-slim", f"FROM {stage[0][1]}"
        copies = [a for i, a in stages[-1] if i == "COPY" and a.startswith("--from=")]
        assert any("/opt/venv" in c for c in copies), copies

    def test_runtime_runs_as_a_non_root_user(self) -> None:
        """The last USER of the runtime stage is neither root nor uid 0."""
        users = [
            args.split(":")[0]
            for instruction, args in dockerfile_stages()[-1]
            if instruction == "USER"
        ]
        assert users, "the runtime stage has no USER: it runs as root"
        assert users[-1] not in ("root", "0")

    def test_runtime_has_a_healthcheck_on_healthz(self) -> None:
        """HEALTHCHECK calls /healthz on HTTP_PORT (8080 by default) with python, not curl."""
        command = dockerfile_healthcheck()[-1]
        assert "/healthz" in command
        assert "${HTTP_PORT:-8080}" in command
        assert command.split()[0] == "python"

    def test_healthcheck_passes_while_alive_and_fails_otherwise(self) -> None:
        """The HEALTHCHECK command exits 0 on a live /healthz, non-zero on a stalled loop or no server."""

        def check(port: int) -> int:
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
            env = {**os.environ, "HTTP_PORT": str(port), "PATH": path, "NO_PROXY": "127.0.0.1"}
            command = dockerfile_healthcheck()[-1]
            return subprocess.run(
                ["sh", "-c", command], env=env, capture_output=True, timeout=30, check=False
            ).returncode

        for alive, expected_ok in ((True, True), (False, False)):
            with HealthServer(
                0, CollectorRegistry(), lambda a=alive: a, lambda: (True, {}), host="127.0.0.1"
            ) as server:
                assert (check(server.port) == 0) is expected_ok, f"alive={alive}"
        assert check(closed_port()) != 0

    def test_pip_keeps_no_cache(self) -> None:
        """Every pip install says --no-cache-dir (PIP_NO_CACHE_DIR=1 is set as well)."""
        installs = [
            args
            for instruction, args in dockerfile_instructions()
            if instruction == "RUN" and "install" in args and "pip" in args
        ]
        assert installs
        for run in installs:
            for step in run.split("&&"):
                if "pip" in step and " install " in step:
                    assert "--no-cache-dir" in step, step

    def test_copies_every_runtime_package_and_no_tooling(self) -> None:
        """pyproject.toml, its readme and every runtime package are copied into the build; the tooling (dreamscape_dev) is not, so the image carries the runtime only."""
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())
        patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
        packages = {p.rstrip("*") for p in patterns} - set(TOOLING)
        copied = {
            args.split()[0].rstrip("/")
            for instruction, args in dockerfile_stages()[0]
            if instruction == "COPY"
        }
        needed = {"pyproject.toml", project["project"]["readme"], *packages}
        assert needed <= copied, f"not copied: {sorted(needed - copied)}"
        assert not copied & set(TOOLING), f"tooling in the image: {sorted(copied & set(TOOLING))}"
        ignored = dockerignore_patterns()
        assert not needed & ignored, f".dockerignore hides {sorted(needed & ignored)}"

    def test_dockerignore_keeps_local_state_out(self) -> None:
        """.dockerignore excludes the venv, git, data, demo output and tool caches."""
        expected = {
            ".venv",
            ".git",
            "data",
            "demo-output",
            ".pytest_cache",
            ".mypy_cache",
            ".ruff_cache",
            ".hypothesis",
        }
        assert expected <= dockerignore_patterns()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
