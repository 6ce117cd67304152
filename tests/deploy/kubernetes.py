"""Reading deploy/kubernetes as data: each kustomization rendered by kustomize, then its objects.

Shared helpers of tests/deploy/test_kubernetes.py. The renderer is the standalone
`kustomize` that `make test` builds into .venv/bin (the Makefile's KUSTOMIZE_VERSION, from
the Go module proxy, once, where Go is installed); rendering needs no cluster. A missing
renderer fails the tests in CI (REQUIRE_TOOLS=1), so the manifests cannot drift unchecked
there; elsewhere they skip naming what is missing.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.deploy.deployment import ROOT

KUBERNETES_DIR: Final = ROOT / "deploy" / "kubernetes"
BASE: Final = KUBERNETES_DIR / "base"
MIGRATIONS: Final = KUBERNETES_DIR / "migrations"
PRODUCTION: Final = KUBERNETES_DIR / "overlays" / "production"
PRODUCTION_MIGRATIONS: Final = PRODUCTION / "migrations"
KEDA: Final = KUBERNETES_DIR / "components" / "keda"
MAKEFILE: Final = ROOT / "Makefile"

Object = dict[str, Any]


def pinned_version() -> str:
    """The kustomize release the Makefile builds (`KUSTOMIZE_VERSION := v5.7.1`)."""
    match = re.search(r"^KUSTOMIZE_VERSION\s*:=\s*(\S+)", MAKEFILE.read_text(), re.MULTILINE)
    assert match, "the Makefile pins no KUSTOMIZE_VERSION"
    return match[1]


def kustomize_binary() -> str:
    """The kustomize to render with: $KUSTOMIZE, else the venv's, else one on PATH.

    None: the test fails under REQUIRE_TOOLS=1 (CI), and elsewhere skips saying what is
    missing, as the other tool-backed tests do (a machine without Go). kubectl's built-in
    kustomize is not used: it is another release, and renders are compared to the pin.
    """
    candidates = [
        os.environ.get("KUSTOMIZE"),
        str(Path(sys.executable).parent / "kustomize"),
        shutil.which("kustomize"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    message = (
        f"kustomize is not installed: `make test` builds kustomize {pinned_version()} into "
        f".venv/bin where Go is installed (`make .venv/.kustomize-{pinned_version()}`)"
    )
    if os.environ.get("REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message} (and REQUIRE_TOOLS=1)")
    pytest.skip(message)


def render(directory: Path) -> list[Object]:
    """The objects `kustomize build directory` prints, in its order."""
    result = subprocess.run(
        [kustomize_binary(), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kustomize build {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def with_component(tmp: Path, overlay: Path, component: Path, namespace: str) -> Path:
    """A kustomization in `tmp` adding `component` to `overlay`, as docs/kubernetes.md says to.

    kustomize accepts only relative paths, and a component's objects must share the
    overlay's namespace for its name references to the overlay's Secrets to resolve.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    document = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(overlay, tmp)],
        "components": [os.path.relpath(component, tmp)],
    }
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(document))
    return tmp


def kustomization(directory: Path) -> Object:
    """The kustomization.yaml of `directory`, as data."""
    document: Object = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return document


# -- reading the objects --------------------------------------------------------------------


def of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    """The objects of `kind`, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: list[Object], kind: str, name_prefix: str) -> Object:
    """The one object of `kind` whose name is `name_prefix` or a generated `name_prefix-<hash>`."""
    found = [
        o
        for name, o in of_kind(objects, kind).items()
        if name == name_prefix or re.fullmatch(re.escape(name_prefix) + r"-[a-z0-9]{10}", name)
    ]
    assert len(found) == 1, f"expected one {kind} {name_prefix}, found {len(found)}"
    return found[0]


def pod_spec(workload: Object) -> Object:
    """The pod template's spec of a Deployment, Job or CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: Object = spec["template"]["spec"]
    return pod


def workloads(objects: list[Object]) -> Iterator[Object]:
    """Every object that runs pods."""
    yield from (o for o in objects if o["kind"] in ("Deployment", "Job", "CronJob"))


def container(workload: Object) -> Object:
    """The one container of a workload (each of ours runs one)."""
    [found] = pod_spec(workload)["containers"]
    assert isinstance(found, dict)
    return found


def secret_data(secret: Object) -> dict[str, str]:
    """A Secret's values, decoded."""
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


def environment(workload: Object, objects: list[Object]) -> dict[str, str]:
    """The container's environment as the kubelet would give it, from the rendered objects.

    envFrom ConfigMaps first, then `env` (which wins); a secretKeyRef is the Secret's value.
    """
    spec = container(workload)
    configmaps = of_kind(objects, "ConfigMap")
    secrets = of_kind(objects, "Secret")
    env: dict[str, str] = {}
    for source in spec.get("envFrom") or []:
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in spec.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        env[item["name"]] = secret_data(secrets[ref["name"]])[ref["key"]]
    return env


def mounted_files(workload: Object, objects: list[Object]) -> dict[str, str]:
    """{path in the container: content} of every file mounted from a rendered Secret."""
    pod = pod_spec(workload)
    secrets = of_kind(objects, "Secret")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    files = {}
    for mount in container(workload).get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        if "secret" not in volume:
            continue
        secret = secrets[volume["secret"]["secretName"]]
        values = secret_data(secret)
        items = volume["secret"].get("items") or [{"key": k, "path": k} for k in values]
        for item in items:
            files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = values[item["key"]]
    return files


def named_port(workload: Object, port: int | str) -> int:
    """A probe's or Service's port, resolved through the container's named ports."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container(workload).get("ports") or []}
    return int(ports[port])
