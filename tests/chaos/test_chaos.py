"""The short chaos run of `make test`: crash, network and poison scenarios, judged in full.

The same harness as `make chaos` (docs/chaos.md), on shorter streams: the three services as
real processes, two instances each, on PostgreSQL and a three-broker Apache Kafka cluster.
Passing means the checker found nothing lost, nothing doubled, every poison record once in
each group's DLQ, no service death and every exit code 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dreamscape_dev.chaos import report
from dreamscape_dev.chaos.environment import Environment
from dreamscape_dev.chaos.harness import ScenarioResult, run_scenario
from dreamscape_dev.chaos.scenarios import Scenario, short_suite
from dreamscape_dev.testing.broker import BrokerChoice

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def environment(broker_choice: BrokerChoice) -> Iterator[Environment]:
    """Three brokers, PostgreSQL and an SMTP server, shared by the scenarios of this module."""
    if broker_choice.kind not in ("apache", "address"):
        pytest.skip(f"the chaos suite needs Apache Kafka; {broker_choice.describe()}")
    with Environment() as env:
        yield env


@pytest.mark.timeout(420)
@pytest.mark.parametrize("scenario", short_suite(), ids=lambda s: s.name)
def test_the_short_scenario_loses_and_doubles_nothing(
    scenario: Scenario, environment: Environment, tmp_path: Path
) -> None:
    """Under the scenario's faults every effect is exact, every poison record dead-lettered once, every instance exits 0."""
    result: ScenarioResult = run_scenario(environment, scenario, tmp_path, say=print)
    print(report.table([result]))
    failed = [f"{c.name}: {c.detail}" for c in result.verdict.checks if not c.ok]
    assert failed == []
    assert result.caught_up_s is not None, "the groups never caught up after the stream"
    assert sum(result.verdict.lost.values()) == 0
    assert sum(result.verdict.doubled.values()) == 0
    assert result.published == result.planned, "the stream was not published in full"
    if scenario.name == "crash":
        assert all(n >= 2 for n in result.kills.values()), result.kills
    if scenario.faults:
        assert len(result.faults) == len(scenario.faults), "a fault did not play"
