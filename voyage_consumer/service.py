"""The voyage service's settings and the `ConsumerSpec` the shared run loop runs.

Everything stateful (engine, schema, metrics) is built here, from settings read in
`main()`, never at import. A database that is unreachable at start-up makes `build` raise,
so the process exits 1 and its supervisor restarts it; once running, an outage is a
transient failure the run loop waits out.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry
from pydantic import model_validator
from sqlalchemy import Engine

from common.db import TRANSIENT_DB_ERRORS, create_schema, make_engine, reachable
from common.handlers import ConsumerSpec
from common.service import run_service
from common.settings import RunnerSettings
from common.topics import GROUP_VOYAGE
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.models import MODELS

SERVICE: Final = "voyage-consumer"
DEFAULT_DATABASE_URL: Final = "sqlite:///data/voyage.db"


class VoyageSettings(RunnerSettings):
    """`RunnerSettings` plus the voyage service's own (field name = environment variable)."""

    voyage_group_id: str | None = None
    """Deprecated: the consumer group is `KAFKA_GROUP_ID` (default `voyage-service`)."""

    @model_validator(mode="after")
    def _deprecated_group(self) -> VoyageSettings:
        self.adopt_deprecated_group("VOYAGE_GROUP_ID", self.voyage_group_id)
        return self

    @property
    def voyage_database_url(self) -> str:
        return self.database_url or DEFAULT_DATABASE_URL


def open_database(url: str) -> Engine:
    """An engine for `url` with the voyage schema created (tables that do not exist yet)."""
    engine = make_engine(url)
    create_schema(engine, MODELS)
    return engine


def build(settings: VoyageSettings, registry: CollectorRegistry) -> ConsumerSpec:
    engine = open_database(settings.voyage_database_url)
    return ConsumerSpec(
        name=SERVICE,
        group_id=settings.group_id(GROUP_VOYAGE),
        handle=VoyageHandler(engine, VoyageMetrics(registry)),
        transient_errors=TRANSIENT_DB_ERRORS,
        readiness_checks={"database": lambda: reachable(engine)},
    )


def run() -> int:
    return run_service(VoyageSettings, build, service=SERVICE)
