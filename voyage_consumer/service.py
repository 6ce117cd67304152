"""`build`: from settings to the `ConsumerSpec` the shared run loop runs.

Everything stateful (engine, schema, metrics) is built here, from settings read in
`main()`, never at import. The database is opened the way every service opens it
(`common.schema.open_database`: waited for, then migrated); once running, an outage is a
transient failure the run loop waits out.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry

from common.db import TRANSIENT_DB_ERRORS, reachable
from common.handlers import ConsumerSpec
from common.schema import open_database
from common.topics import GROUP_VOYAGE
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.settings import VoyageSettings
from voyage_consumer.tables import SCHEMA

SERVICE: Final = "voyage-consumer"


def build(settings: VoyageSettings, registry: CollectorRegistry) -> ConsumerSpec:
    engine = open_database(SCHEMA, settings)
    return ConsumerSpec(
        name=SERVICE,
        group_id=settings.group_id(GROUP_VOYAGE),
        handle=VoyageHandler(engine, VoyageMetrics(registry)),
        transient_errors=TRANSIENT_DB_ERRORS,
        readiness_checks={"database": lambda: reachable(engine)},
        closers=(engine.dispose,),
    )
