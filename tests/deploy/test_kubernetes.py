"""deploy/kubernetes renders, is valid Kubernetes, and agrees with the services it runs.

Every kustomization is rendered with the pinned kustomize (tests/deploy/kubernetes.py) and
each object validated offline by kubernetes-validate's bundled schemas, at the oldest
Kubernetes release the manifests use fields of (1.31) and the newest it knows. The custom
resources (Prometheus Operator, KEDA) have no schema there: each is checked against a small
schema of its own below instead, and the test asserts why. Then the manifests are read as
data against the code: probes and scrapes against the health server's paths and port, every
environment variable against the services' settings classes, the environment as a whole by
loading the settings from it (secrets read from the files the pods mount) and building the
librdkafka clients.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Final, get_args

import confluent_kafka
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from common.health import HealthServer
from common.kafka.client import build_client
from common.service import EXIT_CONFIG
from common.settings import FILE_SUFFIX, RunnerSettings, is_secret_property, load_settings
from tests.deploy.deployment import (
    COMPOSE_FILE,
    CONSUMER_GROUPS,
    dockerfile_stages,
    settings_class_for,
)
from tests.deploy.kubernetes import (
    BASE,
    KEDA,
    KUBERNETES_DIR,
    MIGRATIONS,
    PRODUCTION,
    PRODUCTION_MIGRATIONS,
    Object,
    container,
    environment,
    kustomization,
    kustomize_binary,
    mounted_files,
    named_port,
    of_kind,
    one,
    pinned_version,
    pod_spec,
    render,
    secret_data,
    with_component,
    workloads,
)
from tests.deploy.observability import PROMETHEUS_CONFIG
from tests.deploy.service_settings import env_name

OLDEST_KUBERNETES: Final = "1.31"
"""podFailurePolicy and unhealthyPodEvictionPolicy are GA from 1.31 on."""

KUBERNETES_VERSIONS: Final = (OLDEST_KUBERNETES, kubernetes_validate.latest_version())
NAMESPACE: Final = "dreamscape"
PLACEHOLDER: Final = "CHANGE-ME"
CONSUMER_COMMANDS: Final = tuple(CONSUMER_GROUPS)
RENDERS: Final = ("base", "production", "migrations", "production-migrations", "production-keda")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Object]]:
    """Every kustomization of deploy/kubernetes rendered, and production with the KEDA component."""
    keda = with_component(tmp_path_factory.mktemp("keda"), PRODUCTION, KEDA, NAMESPACE)
    return {
        "base": render(BASE),
        "production": render(PRODUCTION),
        "migrations": render(MIGRATIONS),
        "production-migrations": render(PRODUCTION_MIGRATIONS),
        "production-keda": render(keda),
    }


def consumers(objects: list[Object]) -> dict[str, Object]:
    """The consumer Deployments, by the command they run."""
    found = {container(d)["command"][0]: d for d in of_kind(objects, "Deployment").values()}
    assert sorted(found) == sorted(CONSUMER_COMMANDS)
    return found


def setting(env: dict[str, str], cls: type[RunnerSettings], field: str) -> Any:
    """A setting's value: the environment's if set, else the field's default."""
    name = env_name(cls, field)
    return env[name] if name in env else cls.model_fields[field].default


# -- custom resources: their own small schemas ------------------------------------------------

_NAME = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


CUSTOM_SCHEMAS: Final = {
    # monitoring.coreos.com/v1 ServiceMonitor: the fields used here, as the operator's CRD types them.
    "ServiceMonitor": _resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object"}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    ),
    # keda.sh/v1alpha1 ScaledObject with the `kafka` scaler's metadata (KEDA 2.x).
    "ScaledObject": _resource(
        "keda.sh/v1alpha1",
        "ScaledObject",
        {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": _NAME,
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "kafka"},
                            "authenticationRef": _NAME,
                            "metadata": {
                                "type": "object",
                                "required": ["bootstrapServers", "consumerGroup", "lagThreshold"],
                                "additionalProperties": False,
                                # KEDA reads every metadata value as a string.
                                "patternProperties": {"": {"type": "string"}},
                                "properties": {
                                    "bootstrapServers": {},
                                    "consumerGroup": {},
                                    "lagThreshold": {"pattern": "^[0-9]+$"},
                                    "offsetResetPolicy": {"enum": ["earliest", "latest"]},
                                    "allowIdleConsumers": {"enum": ["true", "false"]},
                                    "sasl": {"enum": ["plaintext", "scram_sha256", "scram_sha512"]},
                                    "tls": {"enum": ["enable", "disable"]},
                                },
                            },
                        },
                    },
                },
            },
        },
    ),
    "TriggerAuthentication": _resource(
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
        {
            "type": "object",
            "required": ["secretTargetRef"],
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {
                            "parameter": {"type": "string"},
                            "name": {"type": "string"},
                            "key": {"type": "string"},
                        },
                    },
                }
            },
        },
    ),
}


class TestRendering:
    """Each kustomization renders, and every object it renders is valid."""

    def test_the_renderer_is_the_pinned_kustomize(self) -> None:
        """The kustomize found is the release the Makefile builds, so a render is the same everywhere."""
        result = subprocess.run(
            [kustomize_binary(), "version"], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == pinned_version()

    @pytest.mark.parametrize("name", RENDERS)
    @pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
    def test_every_object_is_valid_for_kubernetes(
        self, rendered: dict[str, list[Object]], name: str, version: str
    ) -> None:
        """kubernetes-validate (strict: no unknown field) accepts every built-in object; only the custom resources have no schema there."""
        for obj in rendered[name]:
            label = f"{name}: {obj['kind']} {obj['metadata']['name']}"
            if obj["kind"] in CUSTOM_SCHEMAS:
                with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                    kubernetes_validate.validate(obj, version, strict=True)
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
                pytest.fail(f"{label} is not valid for Kubernetes {version}: {exc}")

    @pytest.mark.parametrize("name", RENDERS)
    def test_custom_resources_match_their_own_schemas(
        self, rendered: dict[str, list[Object]], name: str
    ) -> None:
        """ServiceMonitor, ScaledObject and TriggerAuthentication (no bundled schema) pass a schema of the fields they use."""
        for obj in rendered[name]:
            if obj["kind"] in CUSTOM_SCHEMAS:
                jsonschema.Draft202012Validator(CUSTOM_SCHEMAS[obj["kind"]]).validate(obj)

    def test_the_custom_resources_are_where_expected(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """The ServiceMonitor is in the service renders, KEDA's objects only with the KEDA component."""
        kinds = {name: {o["kind"] for o in objects} for name, objects in rendered.items()}
        for name in ("base", "production", "production-keda"):
            assert "ServiceMonitor" in kinds[name], name
        for name in ("base", "production", "migrations", "production-migrations"):
            assert not kinds[name] & {"ScaledObject", "TriggerAuthentication"}, name
        assert {"ScaledObject", "TriggerAuthentication"} <= kinds["production-keda"]

    def test_the_example_secrets_hold_placeholders_only(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """Every value of the example Secret generator is marked CHANGE-ME, ends without a newline, and no manifest outside it carries a Secret."""
        secrets = of_kind(rendered["production"], "Secret")
        assert secrets
        for name, secret in secrets.items():
            for key, value in secret_data(secret).items():
                assert PLACEHOLDER in value, f"{name}/{key} is not a marked placeholder"
                assert not value.endswith("\n"), f"{name}/{key} ends with a newline"
        for name in ("base", "migrations"):
            assert not of_kind(rendered[name], "Secret"), name

    def test_the_migrations_use_the_image_and_secrets_of_the_release(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """production and production/migrations render the same Secrets (names and data) and the same image, in the same namespace."""
        services, jobs = rendered["production"], rendered["production-migrations"]
        assert of_kind(services, "Secret") == of_kind(jobs, "Secret")
        images = {container(w)["image"] for w in [*workloads(services), *workloads(jobs)]}
        assert len(images) == 1, images
        namespaces = {o["metadata"].get("namespace") for o in [*services, *jobs]}
        assert namespaces == {NAMESPACE}

    def test_the_reconcile_cronjob_is_in_the_base_and_at_its_documented_path(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """The base renders deploy/kubernetes/reconcile-cronjob.yaml (a link to base/'s copy), unchanged but for the part-of label."""
        documented = KUBERNETES_DIR / "reconcile-cronjob.yaml"
        assert "reconcile-cronjob.yaml" in kustomization(BASE)["resources"]
        assert documented.resolve() == (BASE / "reconcile-cronjob.yaml").resolve()
        [cronjob] = of_kind(rendered["base"], "CronJob").values()
        expected = yaml.safe_load(documented.read_text())
        expected["metadata"]["labels"]["app.kubernetes.io/part-of"] = "dreamscape-payment-consumers"
        assert json.loads(json.dumps(cronjob)) == json.loads(json.dumps(expected))


@pytest.fixture(params=["base", "production", "production-keda"])
def services_render(request: pytest.FixtureRequest) -> str:
    """The name of a render that runs the three consumers."""
    name: str = request.param
    return name


class TestConsumers:
    """The Deployments run each service as its settings and health server expect."""

    def test_probes_ask_the_health_server_on_its_port(
        self, rendered: dict[str, list[Object]], services_render: str
    ) -> None:
        """Startup and liveness probe /healthz, readiness /readyz, on the container port HTTP_PORT names; the health server answers 200 on each path."""
        objects = rendered[services_render]
        server = HealthServer(0, CollectorRegistry(), lambda: True, lambda: (True, {}))
        for command, deployment in consumers(objects).items():
            spec, env = container(deployment), environment(deployment, objects)
            http_port = int(setting(env, settings_class_for(command), "http_port"))
            for probe, path in (
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ):
                get = spec[probe]["httpGet"]
                assert get["path"] == path, (command, probe)
                assert named_port(deployment, get["port"]) == http_port, (command, probe)
                assert server.respond(path, None)[0] == 200
            assert server.respond("/not-a-probe", None)[0] == 404

    def test_the_startup_probe_outlasts_the_wait_for_the_database(
        self, rendered: dict[str, list[Object]], services_render: str
    ) -> None:
        """The health server starts after the database answers (up to DB_START_TIMEOUT_SECONDS): the startup probe gives longer."""
        objects = rendered[services_render]
        for command, deployment in consumers(objects).items():
            probe = container(deployment)["startupProbe"]
            env = environment(deployment, objects)
            wait = float(setting(env, settings_class_for(command), "db_start_timeout_seconds"))
            assert probe["periodSeconds"] * probe["failureThreshold"] > wait, command

    def test_the_grace_period_outlasts_the_shutdown_deadline(
        self, rendered: dict[str, list[Object]], services_render: str
    ) -> None:
        """The kubelet's SIGKILL comes after SHUTDOWN_TIMEOUT_SECONDS with room to spare (twice it at least), so the service's own deadline comes first."""
        objects = rendered[services_render]
        for command, deployment in consumers(objects).items():
            env = environment(deployment, objects)
            deadline = float(setting(env, settings_class_for(command), "shutdown_timeout_seconds"))
            grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
            assert grace >= 2 * deadline, (command, grace, deadline)

    def test_the_deployments_leave_migrating_to_the_job(
        self, rendered: dict[str, list[Object]], services_render: str
    ) -> None:
        """DB_MIGRATE_ON_START is false in every consumer, as its settings read it."""
        objects = rendered[services_render]
        for command, deployment in consumers(objects).items():
            cls = settings_class_for(command)
            env = environment(deployment, objects)
            assert cls.model_fields["db_migrate_on_start"].default is True  # so say it here
            assert setting(env, cls, "db_migrate_on_start") == "false", command

    def test_each_consumer_has_a_disruption_budget(
        self, rendered: dict[str, list[Object]], services_render: str
    ) -> None:
        """One PodDisruptionBudget per consumer selects exactly its pods and lets a drain take one at a time."""
        objects = rendered[services_render]
        budgets = of_kind(objects, "PodDisruptionBudget").values()
        for command, deployment in consumers(objects).items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            matching = [
                b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
            ]
            assert len(matching) == 1, command
            assert matching[0]["spec"]["maxUnavailable"] == 1
            assert matching[0]["spec"]["selector"] == deployment["spec"]["selector"]

    def test_every_consumer_is_scraped_on_its_metrics_port(
        self, rendered: dict[str, list[Object]], services_render: str
    ) -> None:
        """The ServiceMonitor selects each consumer's Service, whose port reaches HTTP_PORT, on /metrics, under the job names the alerts use, keeping the series' own `service` label."""
        objects = rendered[services_render]
        [monitor] = of_kind(objects, "ServiceMonitor").values()
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["honorLabels"] is True
        server = HealthServer(0, CollectorRegistry(), lambda: True, lambda: (True, {}))
        assert server.respond(endpoint["path"], None)[0] == 200
        jobs = {
            job["job_name"]
            for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
        }
        selector = monitor["spec"]["selector"]["matchLabels"]
        monitored = [
            s
            for s in of_kind(objects, "Service").values()
            if selector.items() <= s["metadata"]["labels"].items()
        ]
        scraped = set()
        for command, deployment in consumers(objects).items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            [service] = [s for s in monitored if s["spec"]["selector"].items() <= labels.items()]
            [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
            env = environment(deployment, objects)
            http_port = int(setting(env, settings_class_for(command), "http_port"))
            assert named_port(deployment, port["targetPort"]) == http_port, command
            scraped.add(service["metadata"]["labels"][monitor["spec"]["jobLabel"]])
        assert scraped == jobs

    def test_resources_are_requested_and_memory_limited(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """Every container requests CPU and memory and has a memory limit above its request."""
        for name in RENDERS:
            for workload in workloads(rendered[name]):
                resources = container(workload)["resources"]
                assert {"cpu", "memory"} <= resources["requests"].keys()
                limit, request = resources["limits"]["memory"], resources["requests"]["memory"]
                assert _mebibytes(limit) > _mebibytes(request), workload["metadata"]["name"]


def _mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


class TestSecurity:
    """Every pod runs as the image's non-root user, read-only, with nothing it does not need."""

    @pytest.mark.parametrize("name", RENDERS)
    def test_pods_run_non_root_with_a_read_only_root_and_no_capabilities(
        self, rendered: dict[str, list[Object]], name: str
    ) -> None:
        """runAsNonRoot as the Dockerfile's USER, RuntimeDefault seccomp, read-only root, no privilege escalation, ALL capabilities dropped, /tmp an emptyDir."""
        [user] = [args for i, args in dockerfile_stages()[-1] if i == "USER"]
        uid, gid = (int(part) for part in user.split(":"))
        for workload in workloads(rendered[name]):
            label = f"{name}: {workload['metadata']['name']}"
            pod = pod_spec(workload)
            context = pod["securityContext"]
            assert context["runAsNonRoot"] is True, label
            assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), label
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, label
            spec = container(workload)
            own = spec["securityContext"]
            assert own["readOnlyRootFilesystem"] is True, label
            assert own["allowPrivilegeEscalation"] is False, label
            assert own["capabilities"]["drop"] == ["ALL"], label
            volumes = {v["name"]: v for v in pod["volumes"]}
            [tmp] = [m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]], label

    @pytest.mark.parametrize("name", RENDERS)
    def test_pods_get_no_service_links_and_no_api_token(
        self, rendered: dict[str, list[Object]], name: str
    ) -> None:
        """enableServiceLinks is off (a Service named kafka would inject KAFKA_PORT, read as a librdkafka property) and no service account token is mounted."""
        for workload in workloads(rendered[name]):
            pod = pod_spec(workload)
            assert pod["enableServiceLinks"] is False, workload["metadata"]["name"]
            assert pod["automountServiceAccountToken"] is False, workload["metadata"]["name"]

    def test_secrets_reach_the_containers_as_files(self, rendered: dict[str, list[Object]]) -> None:
        """In production no secret setting is an environment value: each is a *_FILE naming a file mounted from a Secret."""
        for name in ("production", "production-migrations", "production-keda"):
            objects = rendered[name]
            for workload in workloads(objects):
                label = f"{name}: {workload['metadata']['name']}"
                cls = _settings_of(workload)
                env = environment(workload, objects)
                files = mounted_files(workload, objects)
                secret_variables = {
                    env_name(cls, f) for f, info in cls.model_fields.items() if _secret(info)
                } | {v for v in env if v.startswith("KAFKA_") and _kafka_secret(v)}
                assert not secret_variables & env.keys(), label
                for variable, path in env.items():
                    if variable.endswith(FILE_SUFFIX):
                        assert path in files, f"{label}: {variable}={path} is not mounted"


def _secret(info: Any) -> bool:
    """Whether a settings field holds a secret (`SecretStr`, `DatabaseURL`, optional or not)."""
    return _secret_type(info.annotation)


def _secret_type(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, SecretStr)
    return any(_secret_type(arg) for arg in get_args(annotation))


def _kafka_secret(variable: str) -> bool:
    name = variable.removeprefix("KAFKA_")
    return not variable.endswith(FILE_SUFFIX) and is_secret_property(name.lower().replace("_", "."))


def _settings_of(workload: Object) -> type[RunnerSettings]:
    """The settings class a container's command reads: `migrate` reads the runtime's alone."""
    command = container(workload)["command"]
    if command[1:2] == ["migrate"]:
        return RunnerSettings
    return settings_class_for(command[0])


class TestEnvironment:
    """Every variable the manifests set is one the service reads, with a value it accepts."""

    @pytest.mark.parametrize("name", RENDERS)
    def test_every_variable_names_a_setting(
        self, rendered: dict[str, list[Object]], name: str
    ) -> None:
        """Each name is a field of the container's settings class, `<secret field>_FILE`, or a KAFKA_* property (checked by librdkafka below)."""
        objects = rendered[name]
        for workload in workloads(objects):
            cls = _settings_of(workload)
            fields = {env_name(cls, f): info for f, info in cls.model_fields.items()}
            fields.pop("KAFKA")  # the KAFKA_* pass-through, not a variable of its own
            known = set(fields) | {v + FILE_SUFFIX for v, info in fields.items() if _secret(info)}
            names = set(_declared_names(workload, objects))
            unknown = {n for n in names - known if not n.startswith("KAFKA_")}
            assert not unknown, f"{name}: {workload['metadata']['name']} sets {sorted(unknown)}"
            for variable in names:
                assert not (
                    variable.endswith(FILE_SUFFIX) and variable[: -len(FILE_SUFFIX)] in names
                )

    @pytest.mark.parametrize("name", ["production", "production-migrations", "production-keda"])
    def test_every_environment_is_a_valid_configuration(
        self,
        rendered: dict[str, list[Object]],
        name: str,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """The settings load from the container's environment and mounted Secret files (no exit 2 at start-up), and librdkafka accepts the consumer and producer properties."""
        objects = rendered[name]
        for index, workload in enumerate(workloads(objects)):
            cls = _settings_of(workload)
            env = environment(workload, objects)
            files = mounted_files(workload, objects)
            for variable, path in list(env.items()):
                if variable.endswith(FILE_SUFFIX):
                    local = tmp_path / f"{index}-{variable}"
                    local.write_text(files[path])
                    env[variable] = str(local)
            with monkeypatch.context() as patch:
                for variable in [v for v in os.environ if _read_by(cls, v)]:
                    patch.delenv(variable)
                for variable, value in env.items():
                    patch.setenv(variable, value)
                settings = load_settings(cls)
            assert settings.database_url is not None, workload["metadata"]["name"]
            if cls is RunnerSettings:
                continue  # `migrate` builds no Kafka client
            group = CONSUMER_GROUPS[container(workload)["command"][0]]
            build_client(confluent_kafka.Consumer, settings.consumer_config(group)).close()
            build_client(confluent_kafka.Producer, settings.producer_config()).flush(0)


def _declared_names(workload: Object, objects: list[Object]) -> list[str]:
    spec = container(workload)
    names = [item["name"] for item in spec.get("env") or []]
    configmaps = of_kind(objects, "ConfigMap")
    for source in spec.get("envFrom") or []:
        names += list(configmaps[source["configMapRef"]["name"]]["data"])
    return names


def _read_by(cls: type[RunnerSettings], variable: str) -> bool:
    """Whether the settings would read `variable` from this process's environment."""
    names = {env_name(cls, f) for f in cls.model_fields}
    stem = variable.removesuffix(FILE_SUFFIX)
    return variable.startswith("KAFKA_") or variable in names or stem in names


class TestMigrations:
    """The migrations Jobs prepare each service's database before the rollout."""

    @pytest.mark.parametrize("name", ["migrations", "production-migrations"])
    def test_one_job_per_service_runs_its_migrate_command(
        self, rendered: dict[str, list[Object]], name: str
    ) -> None:
        """Three Jobs run `<service>-consumer migrate`, never restarted in place, failing at once on the command's configuration exit code."""
        jobs = of_kind(rendered[name], "Job")
        commands = sorted(tuple(container(job)["command"]) for job in jobs.values())
        assert commands == sorted((command, "migrate") for command in CONSUMER_COMMANDS)
        for job in jobs.values():
            assert pod_spec(job)["restartPolicy"] == "Never"
            [rule] = job["spec"]["podFailurePolicy"]["rules"]
            assert rule["action"] == "FailJob"
            assert rule["onExitCodes"]["values"] == [EXIT_CONFIG]

    def test_jobs_use_the_owner_login_and_consumers_their_own(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """Each Job mounts its service's Secret key migrate-url, the service's Deployment the key url, both at DATABASE_URL_FILE."""
        deployments = consumers(rendered["production"])
        for job in of_kind(rendered["production-migrations"], "Job").values():
            command = container(job)["command"][0]
            deployment = deployments[command]
            job_volume = _database_volume(job)
            service_volume = _database_volume(deployment)
            assert job_volume["secretName"] == service_volume["secretName"]
            assert [i["key"] for i in job_volume["items"]] == ["migrate-url"]
            assert [i["key"] for i in service_volume["items"]] == ["url"]

    def test_no_job_is_in_the_consumers_render(self, rendered: dict[str, list[Object]]) -> None:
        """The service renders hold no Job: applied together, nothing would make it finish before the rollout."""
        for name in ("base", "production", "production-keda"):
            assert not of_kind(rendered[name], "Job"), name


def _database_volume(workload: Object) -> dict[str, Any]:
    env = {e["name"]: e.get("value") for e in container(workload)["env"]}
    directory = env["DATABASE_URL_FILE"].rsplit("/", 1)[0]
    [mount] = [m for m in container(workload)["volumeMounts"] if m["mountPath"] == directory]
    [volume] = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"]]
    secret: dict[str, Any] = volume["secret"]
    return secret


class TestKeda:
    """The optional KEDA component scales each consumer on its own group's lag."""

    def test_each_consumer_scales_on_its_group_from_its_brokers(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """One ScaledObject per Deployment, on its consumer group, on the brokers the consumers use, from 1 up to the partitions."""
        objects = rendered["production-keda"]
        partitions = int(
            yaml.safe_load(COMPOSE_FILE.read_text())["services"]["topics"]["environment"][
                "PARTITIONS"
            ]
        )
        scaled = {
            s["spec"]["scaleTargetRef"]["name"]: s
            for s in of_kind(objects, "ScaledObject").values()
        }
        deployments = consumers(objects)
        assert sorted(scaled) == sorted(d["metadata"]["name"] for d in deployments.values())
        for command, deployment in deployments.items():
            spec = scaled[deployment["metadata"]["name"]]["spec"]
            env = environment(deployment, objects)
            [trigger] = spec["triggers"]
            assert trigger["metadata"]["consumerGroup"] == env.get(
                "KAFKA_GROUP_ID", CONSUMER_GROUPS[command]
            )
            assert trigger["metadata"]["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
            assert spec["minReplicaCount"] >= 1  # an instance stays to export the metrics
            assert spec["maxReplicaCount"] <= partitions
            assert "replicas" not in deployment["spec"], command  # KEDA owns the count

    def test_the_scaler_logs_in_with_the_consumers_kafka_secret(
        self, rendered: dict[str, list[Object]]
    ) -> None:
        """The TriggerAuthentication names the rendered Kafka credentials Secret and keys it holds, and the SASL mechanism is the consumers'."""
        objects = rendered["production-keda"]
        [auth] = of_kind(objects, "TriggerAuthentication").values()
        secrets = of_kind(objects, "Secret")
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secret_data(secrets[ref["name"]]), ref
        kafka = one(objects, "ConfigMap", "dreamscape-kafka")["data"]
        for scaled in of_kind(objects, "ScaledObject").values():
            [trigger] = scaled["spec"]["triggers"]
            assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
            mechanism = kafka["KAFKA_SASL_MECHANISM"].lower().replace("-", "_")
            assert trigger["metadata"]["sasl"] == mechanism.replace("scram_sha_", "scram_sha")
            assert (trigger["metadata"]["tls"] == "enable") == kafka[
                "KAFKA_SECURITY_PROTOCOL"
            ].endswith("SSL")
