"""The voyage service's settings and the `ConsumerSpec` the shared run loop runs.

Everything stateful (engine, schema, metrics) is built here, from settings read in
`main()`, never at import. The database is opened the way every service opens it
(`common.schema.open_database`: waited for, then migrated); once running, an outage is a
transient failure the run loop waits out.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry
from pydantic import model_validator

from common.db import TRANSIENT_DB_ERRORS, reachable
from common.handlers import ConsumerSpec
from common.schema import open_database
from common.service import run_service
from common.settings import RunnerSettings
from common.topics import GROUP_VOYAGE
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.models import SCHEMA

SERVICE: Final = "voyage-consumer"


class VoyageSettings(RunnerSettings):
    """`RunnerSettings` plus the voyage service's own (field name = environment variable)."""

    voyage_group_id: str | None = None
    """Deprecated: the consumer group is `KAFKA_GROUP_ID` (default `voyage-service`)."""

    @model_validator(mode="after")
    def _deprecated_group(self) -> VoyageSettings:
        self.adopt_deprecated_group("VOYAGE_GROUP_ID", self.voyage_group_id)
        return self


def build(settings: VoyageSettings, registry: CollectorRegistry) -> ConsumerSpec:
    engine = open_database(SCHEMA, settings)
    return ConsumerSpec(
        name=SERVICE,
        group_id=settings.group_id(GROUP_VOYAGE),
        handle=VoyageHandler(engine, VoyageMetrics(registry)),
        transient_errors=TRANSIENT_DB_ERRORS,
        readiness_checks={"database": lambda: reachable(engine)},
    )


def run() -> int:
    return run_service(VoyageSettings, build, service=SERVICE)
