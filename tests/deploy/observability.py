"""Reading deploy/prometheus and deploy/grafana as data, and running the services to scrape them.

Shared by tests/deploy/test_alert_rules.py: the rules, the dashboard's queries and the metric
names they use; promtool; and the three consumers as processes on the session's broker,
made to handle events until every labelled metric child a rule or panel needs exists.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import yaml
from prometheus_client.parser import text_string_to_metric_families

from common.records import OutboundRecord
from common.topics import (
    GROUP_ANALYTICS,
    GROUP_NOTIFICATION,
    GROUP_VOYAGE,
    PAYMENT_INITIATED,
    PAYMENT_REFUNDED,
    Topics,
)
from dreamscape_dev.testing import builders
from dreamscape_dev.testing.broker import create_topics
from dreamscape_dev.testing.running import wait_until
from dreamscape_dev.testing.smtp import SmtpSink
from tests.deploy.deployment import ROOT
from tests.integration.helpers import ServiceProcess, process_env, produce, service_process

PROMETHEUS_DIR: Final = ROOT / "deploy" / "prometheus"
ALERTS: Final = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST: Final = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG: Final = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR: Final = ROOT / "deploy" / "grafana"
DASHBOARD: Final = GRAFANA_DIR / "dashboards" / "dreamscape.json"
DATASOURCES: Final = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS: Final = GRAFANA_DIR / "provisioning" / "dashboards" / "dreamscape.yml"

METRIC_NAME: Final = re.compile(r"\b(?:dreamscape|voyage)_[a-z0-9_]*[a-z0-9]\b")
"""A metric of ours in PromQL text: the services' prefixes, then lower-case words.

PromQL names metrics as bare identifiers; label values are quoted and none of ours starts
with these prefixes, so a regular expression is enough, without parsing PromQL. Metrics that
Prometheus makes itself (`up`, `ALERTS`) are not ours and are not matched. The names are the
sample names a scrape carries (`..._total`, `..._bucket`), so they compare with a scrape.
"""

GRAFANA_VARIABLES: Final = re.compile(r"\$(?:__rate_interval|__interval|__range)\b")
"""Grafana's range variables, replaced by a duration to check a panel query as PromQL."""

TIMEOUT_S: Final = 60.0


# -- reading the files ----------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    """A YAML file as data."""
    return yaml.safe_load(path.read_text())


def all_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml, alerting and recording, each with its group's name under `group`."""
    return [
        {**rule, "group": group["name"]}
        for group in load_yaml(ALERTS)["groups"]
        for rule in group["rules"]
    ]


def rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml, each with the name of its group under `group`."""
    return [rule for rule in all_rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    """Every recording rule of alerts.yml (the event age error ratios)."""
    return [rule for rule in all_rules() if "record" in rule]


def dashboard() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return found


def query_panels() -> list[dict[str, Any]]:
    """The dashboard's panels that show data (rows only group them), nested rows included."""
    found = []
    for panel in dashboard()["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            if inner["type"] != "row":
                found.append(inner)
    return found


def panel_queries() -> list[str]:
    """Every PromQL query of the dashboard: the panels' targets and the template variables'."""
    queries = [target["expr"] for panel in query_panels() for target in panel["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    return queries


def rule_texts() -> list[str]:
    """The PromQL of every rule, and its annotations (a runbook may name a metric to look at)."""
    texts = [text for rule in rules() for text in (rule["expr"], *rule["annotations"].values())]
    return texts + [rule["expr"] for rule in recording_rules()]


def used_metrics(texts: list[str]) -> set[str]:
    """Our metric names in `texts`, leaving out the series recording rules make.

    A recorded name (`service:dreamscape_event_age_slo_errors:ratio_rate5m`) holds a match of
    METRIC_NAME, but Prometheus makes that series: no service serves it.
    """
    recorded = sorted((rule["record"] for rule in recording_rules()), key=len, reverse=True)
    for name in recorded:
        texts = [text.replace(name, "") for text in texts]
    return {name for text in texts for name in METRIC_NAME.findall(text)}


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A compose service's bind mounts as {container path: host path}."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = (
            (volume["source"], volume["target"])
            if isinstance(volume, dict)
            else str(volume).split(":")[:2]
        )
        if source.startswith("/"):
            found[target] = Path(source)
    return found


def run_promtool(binary: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def eval_minutes(duration: str) -> float:
    """A promtool eval_time (`90s`, `12m`, `1h`) in minutes."""
    match = re.fullmatch(r"(\d+)(s|m|h)", duration)
    assert match, f"not a promtool duration: {duration!r}"
    return int(match[1]) * {"s": 1 / 60, "m": 1.0, "h": 60.0}[match[2]]


# -- the metrics the rules and panels use, on the running services -------------------------


def service_env(
    bootstrap: str, topics: Topics, group: str, directory: Path, **values: str
) -> dict[str, str]:
    """A consumer process's environment: its own group and SQLite file, statistics every second."""
    return process_env(
        bootstrap,
        topics,
        KAFKA_GROUP_ID=group,
        KAFKA_STATISTICS_INTERVAL_MS="1000",
        KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS="1000",
        DATABASE_URL=f"sqlite:///{directory}/{group}.db",
        LOG_LEVEL="INFO",  # service.started, which says the port HTTP_PORT=0 picked
        **values,
    )


def metrics_port(service: ServiceProcess) -> int:
    """The port the service's health server bound, from its `service.started` log line."""
    ports: list[int] = []

    def started() -> bool:
        for line in service.output.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"service.started"' in line:
                ports.append(int(json.loads(line)["http_port"]))
        return bool(ports)

    wait_until(started, TIMEOUT_S, "the service.started line", abort=service.died)
    return ports[0]


def scrape(port: int) -> dict[str, float]:
    """The samples of http://127.0.0.1:PORT/metrics, summed by sample name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def spec_records(topics: Topics) -> list[OutboundRecord]:
    """The spec's four examples on their topics, and one record that is not JSON."""
    poison = OutboundRecord(topics.for_event(PAYMENT_INITIATED), b"poison", b"not json")
    return [*builders.spec_records(topics), poison]


def wait_scraped(
    service: ServiceProcess, port: int, what: str, done: Callable[[dict[str, float]], bool]
) -> None:
    """Wait until the samples on `port` satisfy `done`, giving up if the process exits."""
    wait_until(lambda: done(scrape(port)), TIMEOUT_S, what, abort=service.died)


def service_extras(smtp: SmtpSink) -> dict[str, dict[str, str]]:
    """Per service module, the settings it needs beyond the runtime's: notification's mail
    server and addresses, analytics' figures re-read at every scrape."""
    return {
        "notification_consumer": {
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "MAIL_FROM": "DreamScape <no-reply@dreamscape.example>",
            "PAYMENT_RETRY_URL": "https://dreamscape.example/pay/{booking_id}?p={payment_id}",
            "RECIPIENT_EMAIL_TEMPLATE": "{user_id}@example.test",
        },
        "analytics_consumer": {"ANALYTICS_REFRESH_SECONDS": "0"},
    }


@contextmanager
def serving(bootstrap: str, smtp: SmtpSink, directory: Path) -> Iterator[dict[str, int]]:
    """The three services as processes that have handled `spec_records`; {module: /metrics port}.

    Labelled children exist only once their case happened, so each is made to happen: the
    services start before the refunded topic exists (`topic_missing_total{topic}`), which is
    then created and picked up (metadata refreshed every second); the poison record gives
    `dead_letters_total{error_type}`; statistics every second publish `lag{topic,partition}`;
    the refund gives analytics its refunded amounts.
    """
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:8]}-")
    suffix = uuid.uuid4().hex[:8]
    groups = {
        "voyage_consumer": f"{GROUP_VOYAGE}-{suffix}",
        "notification_consumer": f"{GROUP_NOTIFICATION}-{suffix}",
        "analytics_consumer": f"{GROUP_ANALYTICS}-{suffix}",
    }
    refunded = topics.for_event(PAYMENT_REFUNDED)
    present = [topic for topic in topics.payment_topics if topic != refunded]
    create_topics(bootstrap, [*present, *map(topics.dlq, groups.values())])
    records = spec_records(topics)
    extra = service_extras(smtp)
    with ExitStack() as stack:
        started = {
            module: stack.enter_context(
                service_process(
                    module,
                    service_env(bootstrap, topics, group, directory, **extra.get(module, {})),
                    directory,
                )
            )
            for module, group in groups.items()
        }
        ports = {module: metrics_port(service) for module, service in started.items()}
        for module, port in ports.items():
            wait_scraped(
                started[module],
                port,
                f"{module} to report {refunded} missing",
                lambda samples: "dreamscape_consumer_topic_missing_total" in samples,
            )
        create_topics(bootstrap, [refunded])
        produce(bootstrap, records)
        for module, port in ports.items():
            wait_scraped(
                started[module],
                port,
                f"{module} to handle the {len(records)} records and report its lag",
                lambda samples: (
                    samples.get("dreamscape_consumer_records_total", 0) >= len(records)
                    and "dreamscape_consumer_lag" in samples
                ),
            )
        yield ports
