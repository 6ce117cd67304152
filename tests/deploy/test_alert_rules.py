"""deploy/prometheus and deploy/grafana: the alert rules, their unit tests, the dashboard, the wiring.

promtool (Debian's `prometheus` package, installed by scripts/ensure-tools.sh) checks the
rules and the Prometheus configuration and runs the rules' unit tests (alerts_test.yml);
without it those tests skip, or fail under REQUIRE_TOOLS=1. The other tests read the files
as data (tests/deploy/observability.py), and compose.yaml as docker-compose resolves it. The
last test starts the three services as processes against the session's broker and checks
that every metric a rule or a panel names is on their /metrics.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from analytics_consumer.alerts import ALERT_NAMES
from common.metrics import AGE_BUCKETS
from dreamscape_dev.testing.smtp import SmtpSink
from tests.deploy.deployment import (
    ROOT,
    consumers,
    container_ports,
    environment,
    required_tool,
    services,
)
from tests.deploy.observability import (
    ALERTS,
    ALERTS_TEST,
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    GRAFANA_DIR,
    GRAFANA_VARIABLES,
    PROMETHEUS_CONFIG,
    all_rules,
    dashboard,
    eval_minutes,
    load_yaml,
    mounts,
    panel_queries,
    query_panels,
    recording_rules,
    rule_texts,
    rules,
    run_promtool,
    scrape,
    serving,
    used_metrics,
)
from tests.deploy.test_docs import anchors, section, table_rows

OPERATIONS: Final = ROOT / "docs" / "operations.md"
PROFILE: Final = "observability"
SEVERITIES: Final = {"critical", "warning"}
BUSINESS_GROUP: Final = "dreamscape-business"


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path of promtool (scripts/ensure-tools.sh installs Debian's prometheus package)."""
    return required_tool("promtool", "make test installs Debian's prometheus package")


@pytest.fixture
def running_services(
    kafka_bootstrap_servers: str, smtp_server: SmtpSink, tmp_path: Path
) -> Iterator[dict[str, int]]:
    """The three services as processes that have handled events; {module: /metrics port}."""
    with serving(kafka_bootstrap_servers, smtp_server, tmp_path) as ports:
        yield ports


class TestAlertRules:
    """alerts.yml is valid, tested, documented and speaks of what the services export."""

    def test_promtool_accepts_every_rule(self, promtool: str) -> None:
        """`promtool check rules` passes and counts every rule of the file."""
        result = run_promtool(promtool, "check", "rules", ALERTS)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(all_rules())} rules found" in result.stdout

    def test_the_unit_tests_pass(self, promtool: str) -> None:
        """`promtool test rules alerts_test.yml` passes: each alert fires and clears as its test expects."""
        result = run_promtool(promtool, "test", "rules", ALERTS_TEST)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    def test_a_wrong_expectation_fails_the_unit_tests(self, promtool: str, tmp_path: Path) -> None:
        """promtool fails a copy of alerts_test.yml whose first firing expectation is changed to silence, naming the alert."""
        tests = load_yaml(ALERTS_TEST)
        case = next(
            c for t in tests["tests"] for c in t.get("alert_rule_test", []) if c["exp_alerts"]
        )
        case["exp_alerts"] = []
        shutil.copy(ALERTS, tmp_path / "alerts.yml")
        (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests))
        result = run_promtool(promtool, "test", "rules", tmp_path / "alerts_test.yml")
        assert result.returncode != 0
        assert f"alertname: {case['alertname']}" in result.stdout + result.stderr

    def test_each_alert_is_tested_firing_then_cleared(self) -> None:
        """Every alert of alerts.yml has a unit test expecting it at one eval_time and not at a later one."""
        untested = []
        for name in (rule["alert"] for rule in rules()):
            covered = False
            for test in load_yaml(ALERTS_TEST)["tests"]:
                cases = [c for c in test.get("alert_rule_test", []) if c["alertname"] == name]
                fired = [eval_minutes(c["eval_time"]) for c in cases if c["exp_alerts"]]
                cleared = [eval_minutes(c["eval_time"]) for c in cases if not c["exp_alerts"]]
                covered |= any(f < c for f in fired for c in cleared)
            if not covered:
                untested.append(name)
        assert not untested, f"no firing-then-clearing test for {untested}"

    def test_every_rule_has_a_severity_a_summary_and_a_runbook_into_the_docs(self) -> None:
        """Each rule has severity critical or warning, a summary, and a one-line runbook ending in a docs section that exists."""
        for rule in rules():
            name = rule["alert"]
            assert rule["labels"]["severity"] in SEVERITIES, name
            assert rule["annotations"]["summary"].strip(), name
            runbook = rule["annotations"]["runbook"]
            assert "\n" not in runbook.strip(), f"{name}: the runbook is one line"
            link = re.search(r"\((docs/[\w-]+\.md)#([\w-]+)\)$", runbook)
            assert link, f"{name}: the runbook should end with (docs/FILE.md#section)"
            assert link[2] in anchors((ROOT / link[1]).read_text()), f"{name}: no {link[0]}"

    def test_alert_names_are_unique(self) -> None:
        """No two rules share an alert name (the docs table and the unit tests key on it)."""
        names = [rule["alert"] for rule in rules()]
        assert len(names) == len(set(names))

    def test_the_business_rules_relay_each_alert_analytics_raises(self) -> None:
        """The business group's `alert="..."` selectors are exactly analytics_consumer.alerts.ALERT_NAMES."""
        selected = {
            value
            for rule in rules()
            if rule["group"] == BUSINESS_GROUP
            for value in re.findall(r'\balert="([^"]+)"', rule["expr"])
        }
        assert selected == set(ALERT_NAMES)

    def test_the_up_selectors_name_the_scrape_jobs(self) -> None:
        """The jobs the rules select `up` by are the job names of prometheus.yml."""
        jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
        selected: set[str] = set()
        for rule in rules():
            for op, value in re.findall(r'\bup\{job(=~?)"([^"]+)"\}', rule["expr"]):
                selected |= set(value.split("|")) if op == "=~" else {value}
        assert selected == jobs

    def test_the_operations_page_lists_every_alert(self) -> None:
        """docs/operations.md's Alerts table has one row per alert of alerts.yml, with its severity."""
        rows = table_rows(section(OPERATIONS.read_text(), "Alerts"))
        documented = {match[1]: row for row in rows if (match := re.fullmatch(r"`(\w+)`", row[0]))}
        for rule in rules():
            assert rule["alert"] in documented, f"{rule['alert']} is not in the Alerts table"
            assert rule["labels"]["severity"] in documented[rule["alert"]], rule["alert"]
        assert set(documented) == {rule["alert"] for rule in rules()}


class TestEventAgeObjectives:
    """The dreamscape-slo group: error ratios over the workbook's windows, at bucket thresholds."""

    def test_each_ratio_is_recorded_for_the_windows_the_alerts_read(self) -> None:
        """The ratio is recorded over 5m, 30m, 1h, 6h and 3d, and the burn-rate alerts read every one of them."""
        recorded = {rule["record"] for rule in recording_rules()}
        windows = {re.sub(r".*_rate", "", name) for name in recorded}
        assert windows == {"5m", "30m", "1h", "6h", "3d"}
        read = " ".join(r["expr"] for r in rules() if r["group"] == "dreamscape-slo")
        assert all(name in read for name in recorded), recorded

    def test_each_objective_threshold_is_a_bucket_of_the_histogram(self) -> None:
        """Every le the ratios select is an upper bound of AGE_BUCKETS, matched as written (60.0) and normalised (60)."""
        for rule in recording_rules():
            thresholds = re.findall(r'le=~"(\d+)\(\\\\\.0\)\?"', rule["expr"])
            assert thresholds, rule["record"]
            assert {float(t) for t in thresholds} <= set(AGE_BUCKETS), rule["record"]


class TestPrometheusConfig:
    """prometheus.yml loads the rules and scrapes every consumer compose runs."""

    def test_promtool_accepts_the_config_and_its_rule_file(self, promtool: str) -> None:
        """`promtool check config` passes and finds alerts.yml through its relative rule_files path."""
        result = run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS: 1 rule files found" in result.stdout

    def test_every_consumer_of_compose_is_scraped_on_its_http_port(
        self, compose: dict[str, Any]
    ) -> None:
        """Each scrape job resolves one consumer service by name on its HTTP_PORT, and every consumer has a job."""
        scraped = {}
        for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]:
            [sd] = job["dns_sd_configs"]
            assert sd["type"] == "A", job["job_name"]
            [name] = sd["names"]
            scraped[name] = int(sd["port"])
        found = consumers(compose)
        assert set(scraped) == set(found)
        for name, service in found.items():
            http_port = int(environment(service).get("HTTP_PORT", "8080"))
            assert scraped[name] == http_port, name
            assert http_port in container_ports(service), name

    def test_compose_runs_prometheus_with_these_files_under_the_profile(
        self, compose: dict[str, Any]
    ) -> None:
        """compose.yaml's prometheus service, only in the observability profile, mounts prometheus.yml and alerts.yml where the config expects them."""
        prometheus = services(compose)["prometheus"]
        assert prometheus.get("profiles") == [PROFILE]
        mounted = mounts(prometheus)
        assert mounted["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
        [rule_file] = load_yaml(PROMETHEUS_CONFIG)["rule_files"]
        assert mounted[f"/etc/prometheus/{rule_file}"] == ALERTS

    def test_only_the_observability_services_are_in_a_profile(
        self, compose: dict[str, Any]
    ) -> None:
        """`docker compose up` without a profile starts what it did before: only prometheus, grafana and jaeger (observability) have one, besides the reconcile job's own."""
        profiled = {name for name, s in services(compose).items() if s.get("profiles")}
        assert profiled == {"prometheus", "grafana", "jaeger", "reconcile"}
        assert services(compose)["jaeger"]["profiles"] == [PROFILE]
        assert services(compose)["reconcile"]["profiles"] == ["reconcile"]


class TestGrafana:
    """The dashboard is well formed, shows the figures people look at, and is provisioned."""

    def test_every_panel_has_the_provisioned_datasource_and_a_query(self) -> None:
        """Each data panel names the provisioned Prometheus datasource by uid and has at least one non-empty query."""
        [datasource] = load_yaml(DATASOURCES)["datasources"]
        panels = query_panels()
        assert panels, "the dashboard has no panels"
        for panel in panels:
            title = panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, title
            assert panel["targets"], f"{title} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), title
                assert target.get("datasource", panel["datasource"]) == panel["datasource"]

    def test_panel_ids_and_positions_do_not_collide(self) -> None:
        """Panel ids are unique and no two panels overlap on the grid."""
        panels = dashboard()["panels"]
        assert len({p["id"] for p in panels}) == len(panels)
        cells: dict[tuple[int, int], str] = {}
        for panel in panels:
            grid = panel["gridPos"]
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]

    def test_every_panel_query_is_valid_promql(self, promtool: str, tmp_path: Path) -> None:
        """Each panel query, Grafana's variables replaced, passes `promtool check rules` as a recording rule."""
        records = []
        for index, query in enumerate(q for q in panel_queries() if "label_values(" not in q):
            expr = GRAFANA_VARIABLES.sub("5m", query).replace("$service", ".*")
            assert "$" not in expr, f"an unknown Grafana variable in {query}"
            records.append({"record": f"dashboard:query_{index}", "expr": expr})
        rule_file = tmp_path / "dashboard_queries.yml"
        rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
        result = run_promtool(promtool, "check", "rules", rule_file)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(records)} rules found" in result.stdout

    def test_the_dashboard_shows_the_figures_of_the_issue(self) -> None:
        """Events by outcome, lag, DLQ writes, batch latency, emails, business rates and active alerts each have a query."""
        used = used_metrics(panel_queries())
        assert {
            "dreamscape_consumer_records_total",
            "dreamscape_consumer_lag",
            "dreamscape_consumer_dead_letters_total",
            "dreamscape_consumer_batch_duration_seconds_bucket",
            "dreamscape_notification_emails_total",
            "dreamscape_analytics_rate_percent",
            "dreamscape_analytics_alert_active",
        } <= used

    def test_the_event_age_row_shows_both_ages_and_the_burn_rates(self) -> None:
        """The event age row queries both age histograms and every recorded error ratio the alerts read."""
        used = used_metrics(panel_queries())
        assert {
            "dreamscape_consumer_event_age_seconds_bucket",
            "dreamscape_consumer_record_age_seconds_bucket",
        } <= used
        queries = " ".join(panel_queries())
        for window in ("5m", "1h", "6h", "3d"):
            assert f"service:dreamscape_event_age_slo_errors:ratio_rate{window}" in queries

    def test_compose_provisions_grafana_with_the_datasource_and_the_dashboard(
        self, compose: dict[str, Any]
    ) -> None:
        """Grafana (observability profile) mounts the provisioning and the dashboards where the provider reads them, and its datasource is compose's Prometheus."""
        all_services = services(compose)
        grafana = all_services["grafana"]
        assert grafana.get("profiles") == [PROFILE]
        mounted = mounts(grafana)
        assert mounted["/etc/grafana/provisioning"] == GRAFANA_DIR / "provisioning"
        [provider] = load_yaml(DASHBOARD_PROVIDERS)["providers"]
        assert mounted[provider["options"]["path"]] == DASHBOARD.parent
        [datasource] = load_yaml(DATASOURCES)["datasources"]
        url = re.fullmatch(r"http://([\w-]+):(\d+)", datasource["url"])
        assert url, datasource["url"]
        assert url[1] in all_services
        assert int(url[2]) in container_ports(all_services[url[1]])
        env = environment(grafana)
        assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
        home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
        assert mounted[str(home.parent)] / home.name == DASHBOARD


@pytest.mark.integration
class TestMetricsExist:
    """What the rules and the dashboard query is what the services serve."""

    def test_every_metric_a_rule_or_panel_uses_is_on_a_running_service_metrics(
        self, running_services: dict[str, int]
    ) -> None:
        """Each dreamscape_*/voyage_* name in alerts.yml and the dashboard is a sample on the /metrics of voyage, notification or analytics after they handled events."""
        in_rules, in_panels = used_metrics(rule_texts()), used_metrics(panel_queries())
        assert len(in_rules) >= 10, f"the name pattern found too little: {in_rules}"
        assert len(in_panels) >= 15, f"the name pattern found too little: {in_panels}"
        served: set[str] = set()
        for module, port in running_services.items():
            samples = scrape(port)
            assert "dreamscape_consumer_records_total" in samples, module
            served |= samples.keys()
        assert not in_rules - served, (
            f"rules use metrics nobody serves: {sorted(in_rules - served)}"
        )
        assert not in_panels - served, (
            f"panels use metrics nobody serves: {sorted(in_panels - served)}"
        )
